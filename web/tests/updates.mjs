// The Updates screen in a real browser (issue 21): `twinbay up` trusting a
// key made by `twinbay ctl release keygen`, three `twinbay sim` agents and
// two protocol-level agents of agent-sim.mjs (another version), releases
// published and signed on the spot with `ctl release publish --key`.
// Checks: the Hub panel (version, "SQLite, embedded", the agents connected,
// as GET /api/v1/hub says; no replicas table for a hub running alone; the
// replicas table, from the real answer with `replicas` added in the browser,
// passing axe-core); the
// releases as the API lists them (short hash and key, notes);
// the fleet's versions counted as the hub reports them, a click listing one
// version's hosts; the rollout form refusing what it cannot post; with the
// hub's rollouts API: a rollout to the simulated agents with one canary
// followed to done, and pause, resume, a second rollout refused while one is
// active, abort behind its confirmation; the host page's agent version and
// "Update agent" posting the `update` command and following it; a viewer
// reads it all with no form and no buttons; axe-core in both themes.
//
// Run: TWINBAY_BIN=… node --experimental-websocket --test web/tests/updates.mjs
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM, TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, SHOTS, shot, signIn, startHub, stopProcess, watchConsole, launchBrowser, allowHttpErrors, apiAs, getJson, stepper, until } from './harness.mjs';
import { startAgents } from './agent-sim.mjs';
import { expectAccessible } from './axe.mjs';

const run = promisify(execFile);
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const VIEWER_PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const ARCH = { x64: 'x86_64', arm64: 'aarch64' }[process.arch] || process.arch;
const SIM_AGENTS = 3;

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser, ctx, page, simProc, protoAgents;
let rolloutsApi = false;
const problems = [];
const allowed = [];

/** Chrome logs every refused request: the boot's session check; the rollouts API
 * where the hub has none yet; the second rollout refused on purpose (409). */
const allowedHttpError = allowHttpErrors('401 /api/v1/session', '404 /api/v1/rollouts', '409 /api/v1/rollouts');
const api = (method, pathname, body) => apiAs(ctx, hub, method, pathname, body);
const steps = stepper(it, () => page, () => hub.dir);
const { step } = steps;

process.on('exit', () => {
  for (const p of [hub.proc, simProc]) try { p?.kill('SIGKILL'); } catch { /* already gone */ }
});

/** `twinbay ctl --data-dir DATA ARGS`: stdout. */
async function ctl(...args) {
  const { stdout } = await run(BIN, ['ctl', '--data-dir', path.join(hub.dir, 'data'), ...args], { timeout: 60_000 });
  return stdout.trim();
}

/** Publishes `bytes` as `version` for `arch`, signed on the spot with the generated key. */
async function publish(version, arch, notes, bytes) {
  const file = path.join(hub.dir, `twinbay-${version}-${arch}`);
  await fs.writeFile(file, bytes);
  const out = await ctl('release', 'publish', '--file', file, '--version', version, '--arch', arch, '--key', path.join(hub.dir, 'keys', 'minisign.key'), '--notes', notes);
  assert.match(out, new RegExp(`published ${version.replace(/\./g, '\\.')}`));
}

/** The hub's nodes grouped by agent version: { version: [ids] }. */
async function versionsFromApi() {
  const nodes = await getJson(ctx, hub, '/api/v1/nodes');
  const by = {};
  for (const n of nodes) (by[n.agent_version || ''] ||= []).push(n.id);
  return { nodes, by };
}

/** The Updates screen's version rows: { version: count }. */
async function versionsOnScreen() {
  return page.locator('[data-testid="version-row"]').evaluateAll((els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-version'), Number(e.getAttribute('data-count'))])));
}

/** Whether two { version: count } maps say the same. */
const sameCounts = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

describe('updates', { timeout: 300_000 }, () => {
  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-updates-'));
    const data = path.join(hub.dir, 'data');
    const keys = path.join(hub.dir, 'keys');
    // The signing key pair, made by twinbay itself.
    const { stdout } = await run(BIN, ['ctl', 'release', 'keygen', '--out', keys]);
    assert.match(stdout, /public key RW/);
    await startHub(hub, (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '2s', '--update-key', path.join(keys, 'minisign.pub')], PASSWORD);
    // `twinbay sim` agents (they say they are simulated) and two protocol-level agents of another version.
    const join = (await ctl('join-token', 'create')).split('\n').pop();
    const simLog = createWriteStream(path.join(hub.dir, 'sim.log'));
    simProc = spawn(BIN, ['sim', '--join', join, '--agents', String(SIM_AGENTS), '--interval', '2s', '--churn', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    simProc.stdout.pipe(simLog);
    simProc.stderr.pipe(simLog);
    protoAgents = await startAgents({ bin: BIN, dataDir: data, hubUrl: hub.url, count: 2, containersPerHost: 2, intervalMs: 2000 });
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1, colorScheme: 'light', bypassCSP: true });
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    protoAgents?.stop();
    await stopProcess(simProc);
    await stopProcess(hub.proc);
    if (steps.failed) console.error(`updates: kept ${hub.dir} (hub log, sim.log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
  });

  step('the releases: version, arch, size, short hash and key, notes, as the API lists them', async () => {
    await publish('1.4.0', ARCH, 'the first one', randomBytes(150_000));
    await publish('1.5.0', ARCH, 'faster & smaller', randomBytes(120_000));
    await publish('2.0.0', 'riscv64', 'another architecture', randomBytes(90_000));
    await signIn(page, hub.url, 'admin', PASSWORD);
    await page.getByTestId('nav-updates').click();
    await page.waitForURL((u) => u.pathname === '/updates');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="release-row"]').length === 3, null, { timeout: 10_000 });
    const listed = await getJson(ctx, hub, '/api/v1/releases');
    assert.equal(listed.length, 3);
    for (const r of listed) {
      const row = page.locator(`[data-testid="release-row"][data-version="${r.version}"][data-arch="${r.arch}"]`);
      assert.equal(await row.count(), 1, `${r.version}/${r.arch} is listed`);
      assert.equal((await row.getByTestId('release-sha').textContent()).replace('…', ''), r.sha256.slice(0, 12));
      assert.equal(await row.getByTestId('release-sha').getAttribute('title'), r.sha256);
      assert.equal((await row.getByTestId('release-key').textContent()).replace('…', ''), r.key.slice(0, 12));
      assert.equal(await row.getByTestId('release-notes').textContent(), r.notes);
    }
    // Newest first, as the hub lists them.
    const order = await page.locator('[data-testid="release-row"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-version')));
    assert.deepEqual(order, listed.map((r) => r.version));
  });

  step("the fleet's versions are counted as the hub reports them; a click lists one version's hosts", async () => {
    const { by, nodes } = await until('six connected hosts in the API', async () => {
      const v = await versionsFromApi();
      return v.nodes.length === 1 + SIM_AGENTS + 2 && v.nodes.every((n) => n.connected) ? v : null;
    });
    assert.ok(Object.keys(by).length >= 2, `two versions at least: ${JSON.stringify(Object.keys(by))}`);
    const expected = Object.fromEntries(Object.entries(by).map(([v, ids]) => [v, ids.length]));
    await until('the screen to count the versions as the API', async () => sameCounts(await versionsOnScreen(), expected));
    assert.deepEqual(await versionsOnScreen(), expected);
    // The simulated hosts are counted apart.
    const simVersion = nodes.find((n) => n.simulated).agent_version;
    const simCount = nodes.filter((n) => n.simulated && n.agent_version === simVersion).length;
    assert.match(await page.locator(`[data-testid="version-row"][data-version="${simVersion}"]`).textContent(), new RegExp(`${simCount} simulated`));
    // A click on the protocol agents' version lists exactly those hosts.
    const other = Object.keys(by).find((v) => v !== simVersion);
    await page.locator(`[data-testid="version-row"][data-version="${other}"]`).getByTestId('version-open').click();
    await page.waitForURL((u) => u.searchParams.get('version') === other);
    await page.getByTestId('version-hosts').waitFor();
    const ids = await page.locator('[data-testid="version-host"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-node-id')).sort());
    assert.deepEqual(ids, [...by[other]].sort());
    await shot(page, 'updates.png');
  });

  step('the Hub panel: its version, SQLite, the agents connected, as GET /api/v1/hub says', async () => {
    const panel = page.getByTestId('hub-panel');
    await panel.waitFor({ timeout: 10_000 });
    // Read once on open, then every 10 s: the count follows the API's within one refresh.
    const status = await until('the panel to count the connected agents as the API', async () => {
      const s = await getJson(ctx, hub, '/api/v1/hub');
      const shown = await panel.getByTestId('hub-connected').getAttribute('data-connected').catch(() => null);
      return s.connected === 1 + SIM_AGENTS + 2 && shown === String(s.connected) ? s : null;
    }, 25_000);
    assert.equal(status.store, 'sqlite');
    assert.equal(status.replicas ?? null, null, 'a hub running alone has no replicas');
    assert.equal(await panel.getByTestId('hub-store').getAttribute('data-store'), 'sqlite');
    assert.match(await panel.getByTestId('hub-store').textContent(), /^SQLite\b/);
    assert.equal(await panel.getByTestId('hub-version').textContent(), status.version);
    assert.match(await panel.getByTestId('hub-connected').textContent(), new RegExp(`^${status.connected}\\s+of ${status.nodes}$`));
    assert.equal(await panel.getByTestId('hub-replicas').count(), 0, 'no replicas table for a single hub');
    assert.equal(await page.getByRole('region', { name: 'Hub' }).count(), 1, 'the panel is a region named by its heading');
  });

  step('the Hub panel with replicas: id, URL, agent links, started, which one leads and which one answers', async () => {
    // This hub runs alone: its real answer, with the replicas of docs/replicas.md added on the way to the page.
    const now = Date.now();
    const replicas = {
      this: 'r3f9a1c2',
      leader: false,
      leading: 'rb07e4d1',
      live: [
        { id: 'rb07e4d1', public_url: 'https://hub-b.example:7780', agents: 2, started_ms: now - 3_600_000 },
        { id: 'r3f9a1c2', public_url: 'https://hub-a.example:7780', agents: 4, started_ms: now - 120_000 },
      ],
      links: { r3f9a1c2: 4, rb07e4d1: 2, rdead001: 1 },
      dropped_messages: 3,
    };
    await page.route('**/api/v1/hub', async (route) => {
      const res = await route.fetch();
      await route.fulfill({ response: res, json: { ...(await res.json()), store: 'postgres', replicas } });
    });
    try {
      await page.reload();
      const table = page.getByTestId('hub-replicas');
      await table.waitFor({ timeout: 10_000 });
      assert.equal(await page.getByTestId('hub-store').textContent(), 'PostgreSQL');
      assert.match(await page.getByTestId('hub-replica-count').textContent(), /^2 live · this one follows$/);
      const rows = await table.locator('[data-testid="replica-row"]').evaluateAll((els) =>
        els.map((e) => [e.getAttribute('data-id'), e.getAttribute('data-this'), e.querySelector('[data-testid="replica-links"]').textContent]));
      assert.deepEqual(rows, [['r3f9a1c2', 'true', '4'], ['rb07e4d1', 'false', '2'], ['rdead001', 'false', '1']], 'live replicas by id, then one whose lease lapsed');
      const mine = table.locator('[data-testid="replica-row"][data-this="true"]');
      assert.match(await mine.textContent(), /this one/);
      assert.match(await mine.textContent(), /hub-a\.example:7780/);
      assert.match(await mine.textContent(), /follower/);
      assert.match(await table.locator('[data-id="rb07e4d1"]').textContent(), /leader/, 'the one leading, as the answering replica last saw it');
      assert.match(await table.locator('[data-id="rdead001"]').textContent(), /lease lapsed/);
      assert.match(await page.getByTestId('hub-dropped').textContent(), /^3 twin changes were not published/);
      assert.equal(await page.getByRole('region', { name: 'Hub replicas' }).count(), 1);
      await expectAccessible(page, 'updates, hub replicas');
      await shot(page, 'updates-hub-replicas.png');
      // The one answering leads: its row says so, the others follow.
      replicas.leader = true;
      replicas.leading = 'r3f9a1c2';
      await page.reload();
      await table.locator('[data-testid="replica-row"][data-this="true"][data-leader="true"]').waitFor({ timeout: 10_000 });
      assert.match(await table.locator('[data-testid="replica-row"][data-this="true"]').textContent(), /leader/);
      assert.match(await table.locator('[data-id="rb07e4d1"]').textContent(), /follower/);
    } finally {
      await page.unroute('**/api/v1/hub');
    }
  });

  step('the rollout form refuses what it cannot post, before posting', async () => {
    const r = await api('GET', '/api/v1/rollouts');
    rolloutsApi = r.status === 200;
    if (!rolloutsApi) {
      assert.equal(r.status, 404, JSON.stringify(r.json));
      await page.getByTestId('rollouts-unavailable').waitFor({ timeout: 10_000 });
      assert.equal(await page.getByTestId('rollout-form').count(), 0, 'no form for an API the hub lacks');
      return;
    }
    const before = r.json.length;
    const form = page.getByTestId('rollout-form');
    await form.waitFor({ timeout: 10_000 });
    assert.equal(await form.getByTestId('rollout-batch').inputValue(), '25%', 'the default batch');
    assert.equal(await form.getByTestId('rollout-canaries').inputValue(), '1', 'one canary by default');
    await form.getByTestId('rollout-batch').fill('a few');
    await form.getByTestId('rollout-pause').fill('soon');
    await form.getByTestId('rollout-target-group').check({ force: true });
    await form.getByTestId('rollout-group').fill('nokey');
    await form.getByTestId('rollout-start').click();
    await form.getByTestId('rollout-batch-error').waitFor();
    await form.getByTestId('rollout-pause-error').waitFor();
    await form.getByTestId('rollout-group-error').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'batch', 'focus on the first wrong field');
    const { json } = await api('GET', '/api/v1/rollouts');
    assert.equal(json.length, before, 'nothing was posted');
  });

  step('a rollout to the simulated agents with one canary, followed live to done', async (t) => {
    if (!rolloutsApi) return t.skip('this hub has no rollouts API yet');
    const form = page.getByTestId('rollout-form');
    await form.getByTestId('rollout-version').selectOption('1.5.0');
    await form.getByTestId('rollout-group').fill('twinbay.simulated=true');
    await form.getByTestId('rollout-batch').fill('50%');
    await form.getByTestId('rollout-pause').fill('0');
    await form.getByTestId('rollout-start').click();
    await page.waitForURL((u) => !!u.searchParams.get('rollout'), { timeout: 10_000 });
    const id = new URL(page.url()).searchParams.get('rollout');
    const detail = page.locator(`[data-testid="rollout-detail"][data-id="${id}"]`);
    await detail.waitFor();
    await detail.locator('[data-testid="rollout-state"][data-state="done"]').waitFor({ timeout: 90_000 });
    const r = await getJson(ctx, hub, `/api/v1/rollouts/${id}`);
    assert.equal(r.state, 'done');
    assert.equal(r.canaries, 1);
    assert.deepEqual(r.target, { group: 'twinbay.simulated=true' });
    assert.equal(r.hosts.length, SIM_AGENTS);
    assert.equal(r.counts.healthy, SIM_AGENTS, JSON.stringify(r.counts));
    // The screen says what the API says, per host.
    const rows = await detail.locator('[data-testid="rollout-host"]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-node-id'), e.getAttribute('data-state'), e.getAttribute('data-stage')]).sort());
    assert.deepEqual(rows, r.hosts.map((h) => [h.node_id, h.state, h.stage]).sort());
    assert.equal(rows.filter((x) => x[2] === 'canary').length, 1, 'one canary');
    const progress = detail.getByTestId('rollout-progress');
    assert.equal(await progress.getAttribute('data-healthy'), String(SIM_AGENTS));
    assert.equal(await detail.locator('[data-testid="rollout-host"] .badge', { hasText: 'simulated' }).count(), SIM_AGENTS, 'each simulated host says so');
    // The fleet's versions follow: the simulated hosts now report 1.5.0, as the API says.
    const { by } = await until('the simulated hosts on 1.5.0', async () => {
      const v = await versionsFromApi();
      return (v.by['1.5.0'] || []).length === SIM_AGENTS ? v : null;
    }, 30_000);
    await until('the screen to show them', async () => (await versionsOnScreen())['1.5.0'] === by['1.5.0'].length);
    await shot(page, 'updates-rollout.png');
  });

  step('pause, resume; a second rollout is refused while one is active; abort asks first', async (t) => {
    if (!rolloutsApi) return t.skip('this hub has no rollouts API yet');
    await page.goto(`${hub.url}/updates`);
    const form = page.getByTestId('rollout-form');
    await form.waitFor({ timeout: 10_000 });
    await form.getByTestId('rollout-version').selectOption('1.4.0');
    await form.getByTestId('rollout-target-group').check({ force: true });
    await form.getByTestId('rollout-group').fill('twinbay.simulated=true');
    await form.getByTestId('rollout-batch').fill('1');
    await form.getByTestId('rollout-pause').fill('10m');
    await form.getByTestId('rollout-start').click();
    await page.waitForURL((u) => !!u.searchParams.get('rollout'), { timeout: 10_000 });
    const id = new URL(page.url()).searchParams.get('rollout');
    const detail = page.locator(`[data-testid="rollout-detail"][data-id="${id}"]`);
    await detail.getByTestId('rollout-pause').click();
    await detail.locator('[data-testid="rollout-state"][data-state="paused"]').waitFor({ timeout: 10_000 });
    assert.equal((await getJson(ctx, hub, `/api/v1/rollouts/${id}`)).state, 'paused');
    // Another one while this one is active: the hub's 409, shown as it words it.
    await form.getByTestId('rollout-start').click();
    await form.getByTestId('rollout-error').waitFor({ timeout: 10_000 });
    assert.match(await form.getByTestId('rollout-error').textContent(), /active/i);
    await detail.getByTestId('rollout-resume').click();
    await detail.locator('[data-testid="rollout-state"][data-state="running"]').waitFor({ timeout: 10_000 });
    await detail.getByTestId('rollout-abort').click();
    const dialog = page.getByTestId('confirm');
    await dialog.waitFor();
    await expectAccessible(page, 'updates, abort confirmation');
    await dialog.getByTestId('confirm-cancel').click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await getJson(ctx, hub, `/api/v1/rollouts/${id}`)).state, 'running', 'cancel aborts nothing');
    await detail.getByTestId('rollout-abort').click();
    await page.getByTestId('confirm').getByTestId('confirm-ok').click();
    await detail.locator('[data-testid="rollout-state"][data-state="aborted"]').waitFor({ timeout: 10_000 });
    assert.equal((await getJson(ctx, hub, `/api/v1/rollouts/${id}`)).state, 'aborted');
    assert.equal(await detail.getByTestId('rollout-pause').count(), 0, 'no buttons on an ended rollout');
    const row = page.locator(`[data-testid="rollout-row"][data-id="${id}"]`);
    assert.equal(await row.getAttribute('data-state'), 'aborted');
  });

  step("the host page: the agent's version and Update agent, which runs the update command", async () => {
    const nodes = await getJson(ctx, hub, '/api/v1/nodes');
    // The all-in-one's own agent: this machine's hostname, not simulated.
    const local = nodes.find((n) => !n.simulated && n.hostname === os.hostname());
    assert.ok(local, JSON.stringify(nodes.map((n) => [n.id, n.hostname, n.simulated])));
    await page.goto(`${hub.url}/hosts/${local.id}`);
    const version = page.getByTestId('detail-agent-version');
    await version.waitFor({ timeout: 10_000 });
    assert.equal(await version.getAttribute('data-version'), local.agent_version);
    await page.getByTestId('update-agent').click();
    const form = page.getByTestId('update-agent-form');
    await form.waitFor();
    const select = form.getByTestId('update-agent-version');
    await select.waitFor({ timeout: 10_000 });
    // Only this host's architecture's releases, newest first.
    const options = await select.locator('option').evaluateAll((els) => els.map((e) => e.value));
    assert.deepEqual(options, ['1.5.0', '1.4.0']);
    await select.selectOption('1.4.0');
    await expectAccessible(page, 'host, update agent');
    await shot(page, 'host-update-agent.png');
    await form.getByTestId('update-agent-run').click();
    // The console follows it; the command is the agent's update to 1.4.0.
    await page.getByTestId('console').waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => {
      const s = document.querySelector('[data-testid="console-status"]')?.getAttribute('data-status');
      return s && s !== 'running' && s !== 'starting';
    }, null, { timeout: 30_000 });
    const cmds = await getJson(ctx, hub, `/api/v1/nodes/${local.id}/commands?limit=5`);
    const cmd = cmds.find((c) => c.op?.verb === 'update');
    assert.ok(cmd, JSON.stringify(cmds));
    assert.equal(cmd.op.version, '1.4.0');
    assert.equal(cmd.op.target.kind, 'agent');
    assert.equal(await page.getByTestId('console-status').getAttribute('data-status'), cmd.status);
    // `twinbay up` runs its agent inside the hub: it refuses updates, and says so.
    assert.equal(cmd.status, 'refused', JSON.stringify(cmd));
    assert.match(cmd.error || '', /twinbay up|hub's process|inside the hub/i);
    await page.getByTestId('console-close').click();
    await page.getByTestId('tab-commands').click();
    await page.locator(`[data-testid="command-row"][data-id="${cmd.id}"][data-status="refused"]`).waitFor({ timeout: 10_000 });
  });

  step('a viewer reads the screen with no form and no buttons', async () => {
    const { status } = await api('POST', '/api/v1/users', { username: 'vic', password: VIEWER_PASSWORD, role: 'viewer' });
    assert.equal(status, 201);
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1, colorScheme: 'light', bypassCSP: true });
    const vp = await vctx.newPage();
    watchConsole(vp, allowedHttpError, problems, allowed);
    try {
      await signIn(vp, hub.url, 'vic', VIEWER_PASSWORD);
      // A deep link: the hub answers /updates with the app.
      const list = rolloutsApi ? (await apiAs(vctx, hub, 'GET', '/api/v1/rollouts')).json : [];
      await vp.goto(`${hub.url}/updates${list.length ? `?rollout=${list[0].id}` : ''}`);
      await vp.waitForFunction(() => document.querySelectorAll('[data-testid="release-row"]').length === 3, null, { timeout: 10_000 });
      await vp.getByTestId('version-row').first().waitFor({ timeout: 10_000 });
      await vp.getByTestId('hub-store').waitFor({ timeout: 10_000 });
      if (list.length) await vp.getByTestId('rollout-detail').waitFor({ timeout: 10_000 });
      assert.equal(await vp.getByTestId('rollout-form').count(), 0, 'no rollout form for a viewer');
      assert.equal(await vp.locator('[data-testid="rollout-pause"], [data-testid="rollout-resume"], [data-testid="rollout-abort"]').count(), 0);
      const nodes = (await apiAs(vctx, hub, 'GET', '/api/v1/nodes')).json;
      await vp.goto(`${hub.url}/hosts/${nodes[0].id}`);
      await vp.getByTestId('detail-agent-version').waitFor({ timeout: 10_000 });
      assert.equal(await vp.getByTestId('update-agent').count(), 0, 'no Update agent for a viewer');
    } finally {
      await vctx.close();
    }
  });

  step('the screen passes axe-core in both themes', async () => {
    const list = rolloutsApi ? (await api('GET', '/api/v1/rollouts')).json : [];
    const nodes = await getJson(ctx, hub, '/api/v1/nodes');
    const q = new URLSearchParams({ version: nodes[0].agent_version });
    if (list.length) q.set('rollout', list[list.length - 1].id);
    await page.goto(`${hub.url}/updates?${q}`);
    await page.getByTestId('version-hosts').waitFor({ timeout: 10_000 });
    if (list.length) await page.getByTestId('rollout-detail').waitFor({ timeout: 10_000 });
    await page.getByTestId('hub-store').waitFor({ timeout: 10_000 });
    await expectAccessible(page, 'updates, light');
    await page.getByTestId('theme-toggle').click();
    await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark', null, { timeout: 5000 });
    await expectAccessible(page, 'updates, dark');
    await page.getByTestId('theme-toggle').click();
    assert.deepEqual(problems, [], problems.join('\n'));
  });
});
