// Watched configuration files in a real browser (issue 15): `twinbay up` and a
// host that watches a compose file. Where the binary's `up` takes `--watch`
// the local agent watches a real file in a temp dir that the test edits;
// otherwise a hand-written agent (file-agent.mjs, the real protocol 2:
// files in the twin, need_files, file_chunk) reports the same edits. Checks:
// the Files tab lists the file and follows each edit live (no reload); the
// fleet's Config changes screen (/changes) gets each change live and filters
// by risk; the events timeline shows file.changed with its risk; an admin
// opens the file's history and the diff (unified and side by side) shows the
// changed line, redaction markers set apart; a viewer sees the history but
// is told diffs need the operator role; a host without watched files
// explains --watch.
//
// Run: TWINBAY_BIN=… node --experimental-websocket --test web/tests/files.mjs
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM, TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, SHOTS, shot, signIn, sleep, startHub as startHubProcess, stopProcess, watchConsole, launchBrowser } from './harness.mjs';
import { FileAgent } from './file-agent.mjs';

const run = promisify(execFile);
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const VIEWER_PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const DESKTOP = { width: 1280, height: 800 };

const V1 = 'services:\n  web:\n    image: nginx:1.25\n    ports:\n      - "80:80"\n';
const V2 = V1.replace('nginx:1.25', 'nginx:1.27');
const V3 = `${V2}    environment:\n      DB_PASSWORD: «redacted:DB_PASSWORD»\n`;

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser, ctx, page;
let failed = false;
const problems = [];
const allowed = [];
let driver; // { nodeId, hostname, path, write(text), realAgent }
let localId = '';
/** Whether the hub serves GET /nodes/{id}/files/diff (added in parallel; until then the diff checks are skipped). */
let diffEndpoint = true;

function allowedHttpError(msg) {
  const m = /status of (\d{3})/.exec(msg.text());
  if (!m) return false;
  const pathname = new URL(msg.location()?.url || '/', 'http://x').pathname;
  return (m[1] === '401' && pathname === '/api/v1/session') || (!diffEndpoint && m[1] === '404' && pathname.endsWith('/files/diff'));
}

process.on('exit', () => { try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ } });

/** GET as the signed-in admin. */
async function apiGet(pathname) {
  const cookie = (await ctx.storageState()).cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const r = await fetch(`${hub.url}${pathname}`, { headers: { cookie } });
  assert.equal(r.status, 200, `${pathname}: ${r.status}`);
  return r.json();
}

async function apiPost(pathname, body) {
  const cookie = (await ctx.storageState()).cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const r = await fetch(`${hub.url}${pathname}`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', origin: hub.url }, body: JSON.stringify(body) });
  assert.ok(r.ok, `${pathname}: ${r.status} ${await r.clone().text()}`);
  return r.status === 204 ? null : r.json();
}

function step(name, fn) {
  it(name, async (t) => {
    if (failed) return t.skip('an earlier step failed');
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      if (page) await page.screenshot({ path: path.join(hub.dir, 'failure.png') }).catch(() => {});
      throw err;
    }
  });
}

const fileRow = () => page.locator(`[data-testid="file-row"][data-path="${driver.path}"]`);

describe('watched files in the web UI (real browser)', { timeout: 240_000 }, () => {
  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-files-'));
    const data = path.join(hub.dir, 'data');
    const watched = path.join(hub.dir, 'srv', 'compose.yaml');
    await fs.mkdir(path.dirname(watched), { recursive: true });
    await fs.writeFile(watched, V1);
    const help = await run(BIN, ['up', '--help']).then((r) => r.stdout, () => '');
    const realAgent = /--watch\b/.test(help);
    await startHubProcess(hub, (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '1s', ...(realAgent ? ['--watch', watched] : [])], PASSWORD);
    if (realAgent) {
      driver = { realAgent, path: watched, hostname: os.hostname(), write: (text) => fs.writeFile(watched, text) };
    } else {
      const agent = await FileAgent.enroll({ bin: BIN, dataDir: data, hubUrl: hub.url, hostname: 'files-host', files: { '/srv/app/compose.yaml': V1 } });
      driver = { realAgent, agent, nodeId: agent.id, path: '/srv/app/compose.yaml', hostname: 'files-host', write: async (text) => agent.setFile('/srv/app/compose.yaml', text) };
    }
    console.error(`files: driving ${realAgent ? 'the local agent with --watch' : 'a hand-written protocol-2 agent (file-agent.mjs)'}`);
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme: 'light' });
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
  });

  after(async () => {
    driver?.agent?.stop();
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc);
    if (failed) console.error(`files: kept ${hub.dir} (hub log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
  });

  step('the Files tab lists the watched file with its first version rated', async () => {
    await signIn(page, hub.url, 'admin', PASSWORD);
    const nodes = await apiGet('/api/v1/nodes');
    const local = nodes.find((n) => n.hostname === os.hostname());
    localId = local?.id ?? '';
    if (driver.realAgent) driver.nodeId = localId;
    await page.goto(`${hub.url}/hosts/${driver.nodeId}?tab=files`);
    await page.getByTestId('tab-files').waitFor();
    assert.equal(await page.getByTestId('tab-files').getAttribute('aria-selected'), 'true');
    const row = fileRow();
    await row.waitFor({ timeout: 15_000 });
    assert.equal(await row.getAttribute('data-state'), 'present');
    assert.match(await row.textContent(), /compose/);
    // The first sighting is rated once its content is in.
    await row.locator('[data-testid="risk"][data-risk]:not([data-risk=""])').waitFor({ timeout: 15_000 });
    assert.match(await row.getByTestId('last-change').textContent(), /ago|just now/);
  });

  step('an edit shows up in the Files tab live, without a reload', async () => {
    await page.evaluate(() => { window.__noReload = true; });
    const before = await fileRow().getAttribute('data-sha');
    await driver.write(V2);
    await page.waitForFunction(({ p, b }) => {
      const r = document.querySelector(`[data-testid="file-row"][data-path="${p}"]`);
      return r && r.getAttribute('data-sha') !== b && r.querySelector('[data-testid="risk"]')?.getAttribute('data-risk');
    }, { p: driver.path, b: before }, { timeout: 15_000, polling: 100 });
    assert.match(await fileRow().locator('.sub').textContent(), /\S/, 'the change has a summary');
    assert.equal(await page.evaluate(() => window.__noReload), true, 'no reload');
    await shot(page, 'files-tab.png');
  });

  step('/changes lists the change and gets the next one live; the risk filter narrows it', async () => {
    await page.getByTestId('nav-changes').click();
    await page.waitForURL((u) => u.pathname === '/changes');
    const rows = page.locator(`[data-testid="change-row"][data-path="${driver.path}"]`);
    await rows.first().waitFor({ timeout: 10_000 });
    assert.equal(await rows.count(), 1, 'one change so far (a first sighting is not a change)');
    assert.match(await rows.first().textContent(), new RegExp(driver.hostname));
    await driver.write(V3);
    await page.waitForFunction((p) => document.querySelectorAll(`[data-testid="change-row"][data-path="${p}"]`).length === 2, driver.path, { timeout: 15_000, polling: 100 });
    // Newest first, rated.
    await rows.first().locator('[data-testid="risk"][data-risk]:not([data-risk=""])').waitFor({ timeout: 15_000 });
    assert.equal(await page.evaluate(() => window.__noReload), true, 'no reload');
    await shot(page, 'changes.png');
    // Edits of a compose file's image are not critical: the critical floor hides them.
    const risks = await rows.evaluateAll((rs) => rs.map((r) => r.getAttribute('data-risk')));
    await page.getByTestId('risk-critical').click();
    await page.waitForURL((u) => u.searchParams.get('risk') === 'critical');
    if (!risks.includes('critical')) await page.getByTestId('changes-empty').waitFor({ timeout: 5000 });
    await page.getByTestId('risk-all').click();
    await rows.nth(1).waitFor();
  });

  step('the events timeline shows file.changed with its risk', async () => {
    await page.getByTestId('nav-events').click();
    const ev = page.locator('[data-testid="event-row"][data-kind="file.changed"]').first();
    await ev.waitFor({ timeout: 10_000 });
    assert.match(await ev.textContent(), new RegExp(`${driver.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(await ev.getByTestId('risk').textContent(), /risk$/);
  });

  step('an admin opens the history and the diff shows the changed line', async (t) => {
    const cookie = (await ctx.storageState()).cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    const probe = await fetch(`${hub.url}/api/v1/nodes/${driver.nodeId}/files/diff?path=${encodeURIComponent(driver.path)}`, { headers: { cookie } });
    diffEndpoint = !(probe.status === 404 && !(await probe.text()).includes('"error"')); // the endpoint's own 404s say why
    await page.getByTestId('nav-changes').click();
    await page.locator(`[data-testid="change-row"][data-path="${driver.path}"]`).first().getByTestId('change-link').click();
    await page.waitForURL((u) => u.searchParams.get('tab') === 'files' && u.searchParams.get('path') === driver.path);
    const versions = page.getByTestId('version-row');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="version-row"]').length === 3, null, { timeout: 10_000 });
    assert.deepEqual(await versions.evaluateAll((rs) => rs.map((r) => r.getAttribute('data-change'))), ['changed', 'changed', 'first_seen']);
    if (!diffEndpoint) {
      await page.getByTestId('diff-panel').getByTestId('error').waitFor();
      return t.skip('this hub has no /files/diff endpoint yet (404): the history is checked, the diff is not');
    }
    // The newest against the one before: the added environment.
    const diff = page.getByTestId('diff');
    await diff.waitFor({ timeout: 10_000 });
    assert.equal(await diff.getAttribute('data-layout'), 'unified');
    const added = await page.getByTestId('diff-add').allTextContents();
    assert.ok(added.some((l) => /environment:/.test(l)), `the added lines: ${added}`);
    if (!driver.realAgent) {
      // The agent's redaction marker, set apart.
      assert.match(await page.getByTestId('redacted').first().textContent(), /^«redacted:DB_PASSWORD»$/);
    }
    // From the first version: the image line, removed and added.
    await versions.nth(2).getByTestId('pick-from').check();
    await page.waitForURL((u) => u.searchParams.has('from'));
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="diff-del"]')].some((l) => l.textContent.includes('nginx:1.25')), null, { timeout: 10_000 });
    const removed = await page.getByTestId('diff-del').allTextContents();
    assert.ok(removed.some((l) => /image: nginx:1\.25/.test(l)), `removed: ${removed}`);
    assert.ok((await page.getByTestId('diff-add').allTextContents()).some((l) => /image: nginx:1\.27/.test(l)), 'added: nginx:1.27');
    await shot(page, 'file-diff.png');
    await page.getByTestId('diff-split').click();
    await page.locator('[data-testid="diff"][data-layout="split"]').waitFor();
    assert.ok((await page.getByTestId('diff-del').allTextContents()).some((l) => /nginx:1\.25/.test(l)), 'side by side: the old line on the left');
    assert.equal(await page.evaluate(() => window.__noReload), true, 'no reload');
  });

  step('a viewer sees the history but is told diffs need the operator role', async () => {
    await apiPost('/api/v1/users', { username: 'files-viewer', password: VIEWER_PASSWORD, role: 'viewer' });
    const vctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
    const vp = await vctx.newPage();
    watchConsole(vp, allowedHttpError, problems, allowed);
    try {
      await signIn(vp, hub.url, 'files-viewer', VIEWER_PASSWORD);
      await vp.goto(`${hub.url}/hosts/${driver.nodeId}?tab=files&path=${encodeURIComponent(driver.path)}`);
      await vp.getByTestId('diff-forbidden').waitFor({ timeout: 10_000 });
      assert.match(await vp.getByTestId('diff-forbidden').textContent(), /Diffs need the operator role/);
      assert.equal(await vp.getByTestId('version-row').count(), 3, 'the history is there');
      assert.equal(await vp.getByTestId('pick-from').count(), 0, 'nothing to pick for a diff');
      assert.equal(await vp.getByTestId('diff').count(), 0, 'no diff');
    } finally {
      await vctx.close();
    }
  });

  step('a host without watched files explains --watch', async (t) => {
    if (driver.realAgent) return t.skip('the local host watches the file itself');
    await page.goto(`${hub.url}/hosts/${localId}?tab=files`);
    await page.getByTestId('files-empty').waitFor({ timeout: 10_000 });
    assert.match(await page.getByTestId('files-empty').textContent(), /--watch/);
  });

  it('logged no console errors', (t) => {
    for (const line of allowed) t.diagnostic(`allowed: ${line}`);
    assert.deepEqual(problems, []);
  });
});
