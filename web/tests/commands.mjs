// Commands in a real browser, on a real container: starts Podman's API
// service and a busybox container that prints "tick" every second, then
// `twinbay up` (hub + the local agent, watching that socket, with a policy
// file that defines one action) and drives the embedded UI in Debian's
// Chromium through playwright-core. The admin restarts the container from the
// host's Containers tab (confirmed): the console shows the command running,
// then ok, while the row's state changes live; the command is in the host's
// history; its logs follow live and closing the console cancels them on the
// host; the action's form refuses bad input before sending and runs good
// input. A viewer is offered no restart, and a forged one is refused.
//
// Needs: Podman and its local image (scripts/podman-setup.sh, as root).
// Run: bash scripts/browser-test.sh (or node --experimental-websocket --test web/tests/commands.mjs)
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM (default /usr/bin/chromium),
//      TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHOTS, shot, sleep, startHub as startHubProcess, stopProcess, watchConsole, signIn, launchBrowser, podman, startPodmanService } from './harness.mjs';

const IMAGE = 'localhost/twinbay-busybox:latest';
const DESKTOP = { width: 1280, height: 800 };
const pw = (tag) => `${tag}-${randomBytes(8).toString('hex')}`;
const ADMIN_PW = pw('admin');
const VIEWER = { name: 'vera.viewer', pw: pw('view') };
const CONTAINER = `twinbay-ui-restart-${randomBytes(4).toString('hex')}`;
const MESSAGE = 'hello from the browser';
// The agent's policy: the default lifecycle verbs, and one action.
const POLICY = `actions:
  say:
    description: Print a message
    argv: [echo, "{msg}"]
    args:
      - name: msg
        type: string
        description: what to print
        required: true
        max_len: 40
    timeout: 10s
`;

const hub = { proc: null, port: 0, dir: '', url: '', log: '' };
let podmanService = null;
let containerMade = false;
let browser;
let admin; // { ctx, p } signed in as admin throughout
let nodeId = '';
let failed = false;
const problems = []; // console errors and uncaught page errors
const allowed = [];
const report = [];

// Chrome logs every non-2xx response as a console error. The deliberate ones:
const EXPECTED = [
  [401, /^\/api\/v1\/session$/], // boot while signed out
  [403, /^\/api\/v1\/nodes\/[^/]+\/commands$/], // the viewer's forged restart
];
function expectedHttpError(msg) {
  const m = /status of (\d{3})/.exec(msg.text());
  if (!m) return false;
  const pathname = new URL(msg.location()?.url || '/', 'http://x').pathname;
  return EXPECTED.some(([status, re]) => Number(m[1]) === status && re.test(pathname));
}

const elapsed = (t0) => `${((performance.now() - t0) / 1000).toFixed(2)} s`;

/** Podman's API on a socket of our own, with the test's container running. */
async function startPodman() {
  const { socket, proc } = await startPodmanService(hub.dir);
  podmanService = proc;
  // It prints "tick" every second; TERM ends it at once (sh as PID 1 ignores TERM without a trap).
  await podman('run', '-d', '--name', CONTAINER, IMAGE, 'sh', '-c', 'trap "exit 0" TERM; while true; do echo tick; sleep 1; done');
  containerMade = true;
  return socket;
}

async function stopPodman() {
  if (containerMade) await podman('rm', '-f', '-t', '0', CONTAINER).catch((err) => console.error(`commands: podman rm ${CONTAINER}: ${err.message}`));
  await stopProcess(podmanService);
}

async function startHub(socket) {
  const data = path.join(hub.dir, 'data');
  // `twinbay up` keeps the local agent's state in DATA_DIR/agent; the agent reads policy.yaml there.
  await fs.mkdir(path.join(data, 'agent'), { recursive: true, mode: 0o700 });
  await fs.writeFile(path.join(data, 'agent', 'policy.yaml'), POLICY);
  const args = (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '1s', '--container-socket', socket];
  await startHubProcess(hub, args, ADMIN_PW);
}

async function stopHub() {
  await stopProcess(hub.proc);
}
process.on('exit', () => {
  try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ }
  try { podmanService?.kill('SIGKILL'); } catch { /* already gone */ }
});

async function newPage() {
  const ctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme: 'light' });
  const p = await ctx.newPage();
  watchConsole(p, expectedHttpError, problems, allowed);
  return { ctx, p };
}


/** GET from the hub's API with a page's session cookie (from outside the browser). */
async function apiAs(ctx, pathname) {
  const state = await ctx.storageState();
  const cookie = state.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const r = await fetch(`${hub.url}${pathname}`, { headers: { cookie } });
  assert.equal(r.status, 200, `${pathname}: ${r.status}`);
  return r.json();
}

async function waitFor(what, ms, fn) {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}

const row = (p) => p.locator(`[data-testid="container-row"][data-name="${CONTAINER}"]`);
const consoleAt = (p, status) => p.locator(`[data-testid="console"][data-status="${status}"]`);
/** The console's output lines that are exactly `text`. */
const linesOf = (p, text) => p.getByTestId('console-output').evaluate((el, t) => [...el.children].filter((c) => c.textContent === t).length, text);

// Every step depends on the ones before it; after a failure the rest are skipped.
function step(name, fn) {
  it(name, async (t) => {
    if (failed) return t.skip('an earlier step failed');
    const t0 = performance.now();
    try {
      await fn(t);
      report.push(`${name}: ${elapsed(t0)}`);
    } catch (err) {
      failed = true;
      if (admin) await admin.p.screenshot({ path: path.join(hub.dir, 'failure-admin.png') }).catch(() => {});
      throw err;
    }
  });
}

describe('twinbay commands on a real container (real browser)', { timeout: 240_000 }, () => {
  const t0 = performance.now();

  before(async () => {
    await podman('image', 'exists', IMAGE).catch(() => {
      throw new Error(`podman or its image ${IMAGE} is missing: run scripts/podman-setup.sh (as root)`);
    });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-commands-'));
    await fs.mkdir(SHOTS, { recursive: true });
    const socket = await startPodman();
    await startHub(socket);
    browser = await launchBrowser();
    admin = await newPage();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopHub();
    await stopPodman();
    if (failed) console.error(`commands: kept ${hub.dir} (hub and podman logs, failure png). Hub log tail:\n${hub.log.split('\n').slice(-40).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
    for (const line of report) console.error(`commands: ${line}`);
    console.error(`commands: total ${elapsed(t0)}`);
  });

  step('the admin opens the host and sees the running container with its commands', async () => {
    const { p, ctx } = admin;
    await signIn(p, hub.url, 'admin', ADMIN_PW);
    const nodes = await waitFor('the local node', 15_000, async () => {
      const list = await apiAs(ctx, '/api/v1/nodes');
      return list.length ? list : null;
    });
    nodeId = nodes[0].id;
    await p.goto(`${hub.url}/hosts/${encodeURIComponent(nodeId)}?tab=containers`);
    await p.locator(`[data-testid="container-row"][data-name="${CONTAINER}"][data-state="running"]`).waitFor({ timeout: 15_000 });
    const buttons = (await row(p).locator('button').allTextContents()).map((s) => s.trim());
    assert.deepEqual(buttons, ['Logs', 'Status', 'Restart', 'Stop']);
    assert.equal(await p.getByTestId('console').count(), 0, 'no console before a command');
    // The agent's policy reached the twin (the Actions tab counts its action).
    const twin = await apiAs(ctx, `/api/v1/nodes/${encodeURIComponent(nodeId)}`);
    assert.ok(twin.policy?.actions?.say, `the twin carries the agent's policy: ${JSON.stringify(twin.policy)}`);
  });

  let restartId = '';
  step('restart, confirmed: the console shows it running then ok, and the row changes live', async () => {
    const { p } = admin;
    const before = await row(p).getAttribute('data-started');
    assert.ok(before, 'the container has a start time');
    // Watch the row and the console from inside the page: every state they pass through, no reload.
    await p.evaluate((name) => {
      const seen = { row: [], console: [] };
      window.__seen = seen;
      const look = () => {
        const r = document.querySelector(`[data-testid="container-row"][data-name="${name}"]`);
        const rs = r ? `${r.dataset.state}|${r.dataset.started}` : 'gone';
        if (seen.row.at(-1) !== rs) seen.row.push(rs);
        const c = document.querySelector('[data-testid="console"]');
        const cs = c ? c.dataset.status : 'none';
        if (seen.console.at(-1) !== cs) seen.console.push(cs);
      };
      look();
      new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true });
    }, CONTAINER);
    const navigations = [];
    p.on('framenavigated', (f) => f === p.mainFrame() && navigations.push(f.url()));

    await row(p).getByTestId('verb-restart').click();
    const dialog = p.getByTestId('confirm');
    await dialog.getByText(`Restart container ${CONTAINER}?`).waitFor();
    assert.equal(await p.evaluate(() => document.activeElement?.dataset.testid), 'confirm-cancel', 'focus starts on Cancel');
    // Escape cancels: nothing runs.
    await p.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await p.getByTestId('console').count(), 0, 'Escape ran nothing');

    await row(p).getByTestId('verb-restart').click();
    const clicked = performance.now();
    await p.getByTestId('confirm-ok').click();
    await dialog.waitFor({ state: 'detached' });
    await p.getByTestId('console').waitFor();
    await consoleAt(p, 'ok').waitFor({ timeout: 30_000 });
    report.push(`restart: ok in the console ${elapsed(clicked)} after the confirmation`);
    restartId = await p.getByTestId('console').getAttribute('data-command');
    assert.match(restartId, /\S/, 'the console knows the command id');
    assert.match(await p.getByTestId('console-title').textContent(), new RegExp(`restart.*${CONTAINER}`));
    assert.equal((await p.getByTestId('console-exit').textContent()).trim(), 'exit 0');
    assert.match(await p.getByTestId('console-duration').textContent(), /\d/);
    assert.equal(await p.getByTestId('console-cancel').count(), 0, 'no Cancel once it ended');

    // The row went through a state other than running, or at least started again, live.
    const seen = await waitFor('the row to show the restarted container', 15_000, async () => {
      const s = await p.evaluate(() => window.__seen);
      const last = s.row.at(-1);
      return last.startsWith('running|') && last !== `running|${before}` ? s : null;
    });
    assert.ok(seen.console.includes('running'), `the console showed it running: ${seen.console.join(' → ')}`);
    assert.equal(seen.console.at(-1), 'ok');
    assert.ok(seen.console.indexOf('running') < seen.console.indexOf('ok'));
    const states = seen.row.map((s) => s.split('|')[0]);
    report.push(`restart: the row went ${states.join(' → ')}; the console ${seen.console.join(' → ')}`);
    assert.ok(states.some((s) => s !== 'running') || seen.row.length > 1, `the row changed: ${seen.row.join(', ')}`);
    assert.deepEqual(navigations, [], 'no reload or navigation');

    const rec = await apiAs(admin.ctx, `/api/v1/commands/${encodeURIComponent(restartId)}`);
    assert.equal(rec.status, 'ok');
    assert.equal(rec.actor, 'admin');
    await shot(p, 'command-restart.png');
  });

  step('the restart is in the host\'s command history, and opens from there', async () => {
    const { p } = admin;
    await p.getByTestId('console-close').click();
    await p.getByTestId('console').waitFor({ state: 'detached' });
    await p.getByTestId('tab-commands').click();
    const r = p.locator(`[data-testid="command-row"][data-id="${restartId}"]`);
    await r.waitFor({ timeout: 5000 });
    assert.equal(await r.getAttribute('data-status'), 'ok');
    const cells = (await r.locator('td').allTextContents()).map((s) => s.trim());
    assert.match(cells[0], new RegExp(`restart.*${CONTAINER}`));
    assert.equal(cells[1], 'admin');
    assert.equal(cells[2], 'ok');
    assert.equal(cells[3], '0');
    const list = await apiAs(admin.ctx, `/api/v1/nodes/${encodeURIComponent(nodeId)}/commands?limit=50`);
    assert.equal(list[0].id, restartId, 'newest first, as the hub has them');
    await r.getByTestId('command-open').click();
    await consoleAt(p, 'ok').waitFor();
    assert.equal(await p.getByTestId('console').getAttribute('data-command'), restartId);
    await p.getByTestId('console-close').click();
  });

  step('logs follow live, and closing the console cancels them on the host', async () => {
    const { p } = admin;
    await p.getByTestId('tab-containers').click();
    await row(p).getByTestId('verb-logs').click();
    await consoleAt(p, 'running').waitFor({ timeout: 10_000 });
    const first = await waitFor('tick lines', 15_000, async () => {
      const n = await linesOf(p, 'tick');
      return n > 0 ? n : 0;
    });
    // New lines keep arriving (the container prints one a second).
    const more = await waitFor('more tick lines', 10_000, async () => {
      const n = await linesOf(p, 'tick');
      return n >= first + 2 ? n : 0;
    });
    report.push(`logs: ${first} tick lines at first, ${more} a few seconds later`);
    const id = await p.getByTestId('console').getAttribute('data-command');
    assert.ok(id, 'the streamed run has an id');
    assert.equal(await consoleAt(p, 'running').count(), 1, 'still following');
    await shot(p, 'command-logs.png');

    await p.getByTestId('console-close').click();
    await p.getByTestId('console').waitFor({ state: 'detached' });
    const rec = await waitFor('the logs command to end on the hub', 10_000, async () => {
      const r = await apiAs(admin.ctx, `/api/v1/commands/${encodeURIComponent(id)}`);
      return r.status !== 'running' ? r : null;
    });
    assert.equal(rec.status, 'cancelled');
    // The history says so too (it re-reads after a command ends, and every 10 s).
    await p.getByTestId('tab-commands').click();
    await p.locator(`[data-testid="command-row"][data-id="${id}"][data-status="cancelled"]`).waitFor({ timeout: 12_000 });
  });

  step('the action form checks its input before sending, then runs it', async () => {
    const { p, ctx } = admin;
    await p.getByTestId('tab-actions').click();
    const card = p.locator('[data-testid="action"][data-action="say"]');
    await card.waitFor({ timeout: 5000 });
    assert.match(await card.textContent(), /Print a message/);
    const count = async () => (await apiAs(ctx, `/api/v1/nodes/${encodeURIComponent(nodeId)}/commands?limit=50`)).length;
    const n0 = await count();
    await card.getByTestId('action-run').click();
    assert.equal(await card.getByTestId('arg-error-msg').textContent(), 'required');
    await card.getByTestId('arg-msg').fill('hi; rm -rf /');
    await card.getByTestId('action-run').click();
    assert.match(await card.getByTestId('arg-error-msg').textContent(), /^letters, digits/);
    // Longer than max_len cannot even be typed.
    await card.getByTestId('arg-msg').fill('');
    await card.getByTestId('arg-msg').pressSequentially('x'.repeat(45));
    assert.equal((await card.getByTestId('arg-msg').inputValue()).length, 40);
    assert.equal(await p.getByTestId('console').count(), 0, 'nothing ran');
    assert.equal(await count(), n0, 'nothing was sent');

    await card.getByTestId('arg-msg').fill(MESSAGE);
    await card.getByTestId('action-run').click();
    assert.equal(await card.getByTestId('arg-error-msg').count(), 0);
    await consoleAt(p, 'ok').waitFor({ timeout: 15_000 });
    await waitFor('the message in the output', 5000, async () => (await linesOf(p, MESSAGE)) === 1);
    assert.equal((await p.getByTestId('console-exit').textContent()).trim(), 'exit 0');
    await shot(p, 'command-action.png');
    await p.getByTestId('console-close').click();
  });

  step('a viewer is offered no restart, and a forged one is refused', async () => {
    // Created with the admin's session, from the admin's page (same origin).
    const created = await admin.p.evaluate(async (u) => {
      const r = await fetch('/api/v1/users', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: u.name, password: u.pw, role: 'viewer' }) });
      return r.status;
    }, VIEWER);
    assert.ok(created === 200 || created === 201, `user created: ${created}`);
    const v = await newPage();
    try {
      await signIn(v.p, hub.url, VIEWER.name, VIEWER.pw);
      await v.p.goto(`${hub.url}/hosts/${encodeURIComponent(nodeId)}?tab=containers`);
      await row(v.p).waitFor({ timeout: 10_000 });
      const buttons = (await row(v.p).locator('button').allTextContents()).map((s) => s.trim());
      assert.deepEqual(buttons, ['Status'], 'a viewer may only ask for the status');
      for (const id of ['verb-restart', 'verb-stop', 'verb-start', 'verb-logs']) assert.equal(await v.p.getByTestId(id).count(), 0, `no ${id}`);
      // Status runs for a viewer.
      await row(v.p).getByTestId('verb-status').click();
      await consoleAt(v.p, 'ok').waitFor({ timeout: 15_000 });
      assert.equal(await v.p.getByTestId('console-cancel').count(), 0);
      await v.p.getByTestId('console-close').click();
      // The action is shown, not runnable.
      await v.p.getByTestId('tab-actions').click();
      const card = v.p.locator('[data-testid="action"][data-action="say"]');
      await card.waitFor();
      assert.equal(await card.getByTestId('action-run').isDisabled(), true);
      assert.match(await card.textContent(), /Needs the operator role/);
      // What the page could do anyway is refused by the hub.
      const forged = await v.p.evaluate(async ({ node, name }) => {
        const r = await fetch(`/api/v1/nodes/${encodeURIComponent(node)}/commands`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ op: 'lifecycle', target: { kind: 'container', name }, verb: 'restart' }),
        });
        return { status: r.status, body: await r.json() };
      }, { node: nodeId, name: CONTAINER });
      assert.equal(forged.status, 403);
      assert.ok(forged.body.error?.message, 'the refusal says why');
    } catch (err) {
      await v.p.screenshot({ path: path.join(hub.dir, 'failure-viewer.png') }).catch(() => {});
      throw err;
    } finally {
      await v.ctx.close();
    }
  });

  step('logged no console errors', async (t) => {
    for (const line of allowed) t.diagnostic(`allowed: ${line}`);
    assert.deepEqual(problems, []);
  });
});
