// The Backups screen in a real browser (issue 18): `twinbay up` whose local
// agent has a policy with a backup root (a directory of files) and a producer
// action that fails; artifacts go to the hub's local store in its data dir.
// Checks: the screen is in the navigation; a backup job scheduled from it with
// the cron helper (the next five runs in the chosen zone) lists its next run;
// "Run now" runs it on the real agent, the run ends ok and its artifact
// appears in the catalog; Download (progress bar, SHA-256 checked in the
// page) saves bytes whose SHA-256 is the catalog's, and they are the
// directory's tar; verify; restore behind a confirmation brings a deleted
// file back; a failing producer is a loud failure with its reason and no
// artifact; filters; the overview's card; WCAG 2.1 A/AA (axe-core); phone
// width; screenshots; no console errors; a real Podman volume backed up from
// the form (an exclude glob honoured) and restored into the volume.
//
// Run: TWINBAY_BIN=… node --experimental-websocket --test web/tests/backups.mjs
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM, TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHOTS, shot, signIn, startHub, stopProcess, watchConsole, launchBrowser, podman, startPodmanService, allowHttpErrors, apiAs, stepper } from './harness.mjs';
import { expectAccessible } from './axe.mjs';

const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const VOLUME = `twinbay-bk-${randomBytes(4).toString('hex')}`;
const policy = (root) => `backup:
  roots: [${root}]
  volumes: [${VOLUME}]
actions:
  broken-dump:
    description: A dump that fails, as one whose database is gone does
    argv: [sh, -c, "echo partial; echo 'dump: database \\"nope\\" does not exist' >&2; exit 3"]
    producer: true
    timeout: 20s
`;

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser, ctx, page;
let root = ''; // the backup root: the directory backed up
let nodeId = '';
let podmanService = null; // Podman's API, for the volume backup
let volumeDir = ''; // the volume's directory on this host
const problems = [];
const allowed = [];
const report = [];

/** Chrome logs every refused request; these are the ones the test makes on purpose (the cron helper asked about a pattern that never fires). */
const allowedHttpError = allowHttpErrors('401 /api/v1/session', '400 /api/v1/schedules/preview');
const api = (method, pathname, body) => apiAs(ctx, hub, method, pathname, body);
const steps = stepper(it, () => page, () => hub.dir);
const { step } = steps;

process.on('exit', () => {
  try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ }
  try { podmanService?.kill('SIGKILL'); } catch { /* already gone */ }
});

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
const row = (job) => page.locator(`[data-testid="backup-row"][data-job="${job}"]`);

describe('backups', { timeout: 240_000 }, () => {
  const t0 = performance.now();
  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-backups-'));
    root = path.join(hub.dir, 'srv');
    await fs.mkdir(path.join(root, 'photos'), { recursive: true });
    await fs.writeFile(path.join(root, 'a.txt'), 'hello backups\n');
    await fs.writeFile(path.join(root, 'photos', 'b.bin'), randomBytes(300_000));
    const policyFile = path.join(hub.dir, 'policy.yaml');
    await fs.writeFile(policyFile, policy(root));
    // A real container volume, through Podman's Engine API on a socket of our own.
    const podmanApi = await startPodmanService(hub.dir);
    podmanService = podmanApi.proc;
    await podman('volume', 'create', VOLUME);
    volumeDir = await podman('volume', 'inspect', '--format', '{{.Mountpoint}}', VOLUME);
    await fs.writeFile(path.join(volumeDir, 'db.sql'), 'create table photos (id int);\n');
    await fs.writeFile(path.join(volumeDir, 'scratch.tmp'), 'left out\n');
    await startHub(hub, (listen) => ['up', '--listen', listen, '--data-dir', path.join(hub.dir, 'data'), '--interval', '2s', '--policy', policyFile, '--container-socket', podmanApi.socket], PASSWORD);
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme: 'light', bypassCSP: true, acceptDownloads: true });
    ctx.setDefaultTimeout(30_000);
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc);
    if (volumeDir) await podman('volume', 'rm', '-f', VOLUME).catch((err) => console.error(`backups: podman volume rm ${VOLUME}: ${err.message}`));
    await stopProcess(podmanService);
    if (steps.failed) console.error(`backups: kept ${hub.dir} (hub log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
    for (const line of report) console.error(`backups: ${line}`);
    console.error(`backups: total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  step('the Backups screen is in the navigation; empty, with the form for the host with a backup root', async () => {
    await signIn(page, hub.url, 'admin', PASSWORD);
    await page.getByTestId('nav-backups').click();
    await page.waitForURL((u) => u.pathname === '/backups');
    await page.getByTestId('backups-empty').waitFor();
    // The form appears once the agent's policy is in the twin.
    await page.getByTestId('backup-form').waitFor({ timeout: 20_000 });
    const { json: nodes } = await api('GET', '/api/v1/nodes');
    assert.equal(nodes.length, 1);
    nodeId = nodes[0].id;
    assert.equal(await page.getByTestId('backup-host').inputValue(), nodeId);
    assert.equal(await page.getByTestId('backup-path').inputValue(), root, 'the backup root, prefilled');
  });

  step('a backup job on a schedule, with the cron helper: the next five runs in the zone, then its next run listed', async () => {
    await page.getByTestId('backup-job').fill('srv-files');
    await page.getByTestId('backup-keep-last').fill('3');
    await page.getByTestId('backup-when').selectOption('schedule');
    await page.getByTestId('backup-cron').fill('30 3 * * *');
    await page.getByTestId('backup-tz').fill('Europe/Berlin');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="cron-next"]').length === 5, null, { timeout: 10_000 });
    const ms = await page.locator('[data-testid="cron-next"]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-ms'))));
    for (let i = 1; i < 5; i++) assert.equal(ms[i] - ms[i - 1], 86_400_000, 'daily (no DST change in the next five days of this test)' );
    const text = await page.getByTestId('cron-preview').textContent();
    assert.match(text, /Europe\/Berlin/);
    assert.match(text, /03:30/);
    // A pattern that never fires is refused as it is typed.
    await page.getByTestId('backup-cron').fill('0 0 30 2 *');
    await page.getByTestId('cron-error').waitFor({ timeout: 10_000 });
    assert.match(await page.getByTestId('cron-error').textContent(), /never fires/);
    await page.getByTestId('backup-cron').fill('30 3 * * *');
    await page.getByTestId('cron-preview').waitFor();
    await page.getByTestId('backup-schedule-name').fill('nightly srv');
    await page.getByTestId('backup-submit').click();
    const s = page.locator('[data-testid="backup-schedule-row"][data-name="nightly srv"]');
    await s.waitFor({ timeout: 10_000 });
    assert.match(await s.getByTestId('backup-schedule-next').textContent(), /03:30/);
    const { json } = await api('GET', '/api/v1/schedules');
    assert.equal(json.length, 1);
    assert.deepEqual(json[0].target, { node: nodeId });
    const c = json[0].command;
    assert.deepEqual([c.op, c.job, c.source, c.keep?.last], ['backup', 'srv-files', { kind: 'dir', path: root }, 3], JSON.stringify(c));
  });

  step('run now: the backup runs on the agent, ends ok, and its artifact appears in the catalog', async (t) => {
    const t1 = performance.now();
    await page.locator('[data-testid="backup-schedule-row"][data-name="nightly srv"]').getByTestId('backup-schedule-run').click();
    await page.locator('[data-testid="backup-run-row"][data-op="backup"][data-status="ok"]').waitFor({ timeout: 60_000 });
    await row('srv-files').waitFor({ timeout: 10_000 });
    report.push(`run now → artifact listed in ${(performance.now() - t1).toFixed(0)} ms`);
    t.diagnostic(report.at(-1));
    const { json: list } = await api('GET', '/api/v1/backups');
    assert.equal(list.length, 1);
    const b = list[0];
    assert.equal(b.node_id, nodeId);
    assert.equal(b.status, 'complete');
    assert.equal(await row('srv-files').getAttribute('data-sha256'), b.sha256);
    assert.equal(Number(await row('srv-files').getAttribute('data-size')), b.size);
    assert.match(await row('srv-files').textContent(), new RegExp(b.sha256.slice(0, 12)));
    // The schedule's run is by the scheduler, recorded with its command.
    const { json: schedules } = await api('GET', '/api/v1/schedules');
    const { json: runs } = await api('GET', `/api/v1/schedules/${schedules[0].id}/runs`);
    assert.equal(runs[0].status, 'ok');
    assert.equal(runs[0].command_id, b.command_id);
  });

  step('download: a progress bar, the SHA-256 checked in the page, and the saved bytes are the catalog\'s', async (t) => {
    const { json: [b] } = await api('GET', '/api/v1/backups');
    // A slow link (DevTools throttling, ~150 KB/s), so the progress bar is seen moving.
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: 150_000, uploadThroughput: -1 });
    const downloaded = page.waitForEvent('download');
    await row('srv-files').getByTestId('backup-download').click();
    const bar = row('srv-files').locator('[data-testid="download-progress"] progress');
    await bar.waitFor({ timeout: 5000 });
    await page.waitForFunction(() => {
      const p = document.querySelector('[data-testid="download-progress"] progress');
      return p && p.value > 0 && p.value < p.max;
    }, null, { timeout: 5000, polling: 50 });
    assert.equal(Number(await bar.getAttribute('max')), b.size, 'out of the artifact\'s size');
    const dl = await downloaded;
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await cdp.detach();
    const file = await dl.path();
    const bytes = await fs.readFile(file);
    assert.equal(bytes.length, b.size);
    assert.equal(sha256(bytes), b.sha256, 'the downloaded bytes hash to the catalog\'s SHA-256');
    assert.match(dl.suggestedFilename(), /srv-files.*\.tar\.zst$/);
    await row('srv-files').locator('[data-testid="download-done"][data-matched="true"]').waitFor();
    // What was backed up: the directory's tar.
    const names = execFileSync('sh', ['-c', `zstd -dc '${file}' | tar -t`]).toString();
    assert.match(names, /\.\/a\.txt/);
    assert.match(names, /\.\/photos\/b\.bin/);
    t.diagnostic(`${b.size} bytes, sha256 ${b.sha256}`);
  });

  step('verify re-reads the artifact', async () => {
    await row('srv-files').getByTestId('backup-verify').click();
    const r = row('srv-files').getByTestId('verify-result');
    await r.waitFor();
    assert.equal(await r.getAttribute('data-ok'), 'true');
    // The catalog says when it was last verified.
    await page.waitForFunction(() => /verified just now/.test(document.querySelector('[data-testid="backup-row"]')?.textContent || ''), null, { timeout: 10_000 });
    const { json: [b] } = await api('GET', '/api/v1/backups');
    assert.ok(b.verified_ms > 0);
  });

  step('restore, behind a confirmation, brings a deleted file back', async () => {
    await fs.rm(path.join(root, 'a.txt'));
    await row('srv-files').getByTestId('backup-restore').click();
    const dialog = page.getByTestId('confirm');
    await dialog.waitFor();
    assert.match(await dialog.textContent(), /Restore srv-files onto/);
    assert.equal(await page.getByTestId('restore-path').inputValue(), root, 'back where it came from, by default');
    await expectAccessible(page, 'backups, restore dialog');
    await page.getByTestId('confirm-ok').click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('[data-testid="backup-run-row"][data-op="restore"][data-status="ok"]').waitFor({ timeout: 30_000 });
    assert.equal(await fs.readFile(path.join(root, 'a.txt'), 'utf8'), 'hello backups\n');
  });

  step('a failing producer is a loud failure with its reason, and no artifact', async () => {
    await page.getByTestId('backup-job').fill('broken-dump');
    await page.getByTestId('backup-kind').selectOption('action');
    await page.getByTestId('backup-when').selectOption('now');
    await page.getByTestId('backup-submit').click();
    await page.getByTestId('backup-notice').waitFor();
    const failedRow = page.locator('[data-testid="backup-run-row"][data-op="backup"][data-status="failed"]');
    await failedRow.waitFor({ timeout: 30_000 });
    const banner = page.getByTestId('backup-failures');
    await banner.waitFor();
    const text = await banner.textContent();
    assert.match(text, /1 backup or restore run failed/);
    assert.match(text, /exit|does not exist/, text);
    assert.equal(await row('broken-dump').count(), 0, 'no artifact of a failed run');
    const { json: list } = await api('GET', '/api/v1/backups');
    assert.equal(list.length, 1);
  });

  step('filters: job, state, search by SHA-256, size', async () => {
    const { json: [b] } = await api('GET', '/api/v1/backups');
    await page.getByTestId('backup-search').fill(b.sha256.slice(0, 10));
    await row('srv-files').waitFor();
    await page.getByTestId('backup-search').fill('0000000000nothing');
    await page.getByTestId('backups-empty').waitFor();
    await page.getByTestId('backup-search').fill('');
    await row('srv-files').waitFor();
    await page.getByTestId('backup-state-corrupt').click();
    await page.getByTestId('backups-empty').waitFor();
    await page.getByTestId('backup-state-all').click();
    await page.getByTestId('backup-filter-size').selectOption('1gib');
    await page.getByTestId('backups-empty').waitFor();
    await page.getByTestId('backup-filter-size').selectOption('');
    await page.getByTestId('backup-filter-job').selectOption('srv-files');
    await row('srv-files').waitFor();
    assert.equal(new URL(page.url()).searchParams.get('job'), 'srv-files', 'filters live in the URL');
    await page.goto(`${hub.url}/backups`);
    await row('srv-files').waitFor();
  });

  step('screenshots and WCAG 2.1 A/AA at desktop and phone width', async () => {
    await page.getByTestId('backup-failures').waitFor();
    await shot(page, 'backups.png');
    await expectAccessible(page, 'backups');
    const phone = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 1, hasTouch: true, isMobile: true, colorScheme: 'dark', bypassCSP: true, storageState: await ctx.storageState() });
    const p = await phone.newPage();
    watchConsole(p, allowedHttpError, problems, allowed);
    try {
      await p.goto(`${hub.url}/backups`);
      await p.locator('[data-testid="backup-row"]').first().waitFor();
      await p.getByTestId('backup-failures').waitFor();
      assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= 390), 'nothing wider than the phone');
      await shot(p, 'backups-phone.png');
      await expectAccessible(p, 'backups, phone, dark');
    } finally {
      await phone.close();
    }
  });

  step('a viewer reads the catalog but is offered no download, verify, restore, prune or backup', async () => {
    const password = `pw-${randomBytes(9).toString('hex')}`;
    const { status } = await api('POST', '/api/v1/users', { username: 'vera', password, role: 'viewer' });
    assert.equal(status, 201);
    const vctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
    const p = await vctx.newPage();
    watchConsole(p, allowedHttpError, problems, allowed);
    try {
      await signIn(p, hub.url, 'vera', password);
      await p.getByTestId('nav-backups').click();
      await p.locator('[data-testid="backup-row"][data-job="srv-files"]').waitFor();
      await p.getByTestId('backup-runs').waitFor();
      for (const id of ['backup-download', 'backup-verify', 'backup-restore', 'backup-prune', 'backup-form', 'backup-schedule-run']) {
        assert.equal(await p.getByTestId(id).count(), 0, `no ${id} for a viewer`);
      }
      // The hub agrees: a viewer's download is refused.
      const cookie = (await vctx.storageState()).cookies.map((c) => `${c.name}=${c.value}`).join('; ');
      const { json: [b] } = await api('GET', '/api/v1/backups');
      assert.equal((await fetch(`${hub.url}/api/v1/backups/${b.id}/download`, { headers: { cookie } })).status, 403);
    } finally {
      await vctx.close();
    }
  });

  step('the overview names a failing backup schedule and the newest backup', async () => {
    const body = { name: 'nightly broken dump', cron: '0 4 * * *', timezone: 'UTC', target: { node: nodeId }, command: { op: 'backup', job: 'broken-dump', source: { kind: 'action', name: 'broken-dump', args: {} } } };
    const { status, json } = await api('POST', '/api/v1/schedules', body);
    assert.equal(status, 201, JSON.stringify(json));
    assert.equal((await api('POST', `/api/v1/schedules/${json.id}/run`)).status, 202);
    for (let i = 0; i < 100; i++) {
      const { json: runs } = await api('GET', `/api/v1/schedules/${json.id}/runs`);
      if (runs[0] && runs[0].status !== 'running') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.getByTestId('nav-overview').click();
    const card = page.getByTestId('backups-card');
    await card.waitFor({ timeout: 10_000 });
    assert.equal(await card.getAttribute('data-failing'), '1');
    assert.match(await card.textContent(), /nightly broken dump/);
    assert.match(await page.getByTestId('backups-newest').textContent(), /srv-files/);
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  step('a container volume: backed up from the form (exclude honoured), restored into the volume', async (t) => {
    await page.getByTestId('nav-backups').click();
    await page.getByTestId('backup-form').waitFor();
    const formAtFill = await page.getByTestId('backup-form').elementHandle();
    await page.getByTestId('backup-job').fill('photos-db');
    await page.getByTestId('backup-kind').selectOption('volume');
    assert.equal(await page.getByTestId('backup-volume').inputValue(), VOLUME, 'the policy\'s volume, prefilled');
    await page.getByTestId('backup-exclude').fill('*.tmp');
    await page.getByTestId('backup-when').selectOption('now');
    await page.getByTestId('backup-submit').click();
    await row('photos-db').waitFor({ timeout: 60_000 }).catch(async (err) => {
      // Say what became of the run, not only that its row never came.
      const { json: runs } = await api('GET', `/api/v1/nodes/${encodeURIComponent(nodeId)}/commands?limit=20`);
      const mine = (runs || []).filter((r) => JSON.stringify(r.op).includes('photos-db'));
      const said = async (id) => ((await page.getByTestId(id).count()) ? (await page.getByTestId(id).textContent()).trim() : '(none)');
      const form = (await page.getByTestId('backup-form').count())
        ? `job field "${await page.getByTestId('backup-job').inputValue()}", kind ${await page.getByTestId('backup-kind').inputValue()}, the same form as filled: ${await formAtFill.evaluate((f) => f.isConnected)}`
        : 'no form';
      throw new Error(`${err.message}\nthe photos-db runs: ${JSON.stringify(mine, null, 1).slice(0, 3000)}\nthe form: ${form}; error: ${await said('backup-error')}; notice: ${await said('backup-notice')}`);
    });
    const { json: list } = await api('GET', '/api/v1/backups');
    const b = list.find((x) => x.job === 'photos-db');
    assert.equal(b.source, `volume ${VOLUME} (exclude *.tmp)`);
    // The artifact is the volume's tar, without what was left out.
    const cookie = (await ctx.storageState()).cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    const bytes = Buffer.from(await (await fetch(`${hub.url}/api/v1/backups/${b.id}/download`, { headers: { cookie } })).arrayBuffer());
    assert.equal(sha256(bytes), b.sha256);
    const names = execFileSync('sh', ['-c', 'zstd -dc | tar -t'], { input: bytes }).toString();
    assert.match(names, /\.\/db\.sql/);
    assert.doesNotMatch(names, /scratch\.tmp/, 'the exclude glob');
    t.diagnostic(`volume ${VOLUME}: ${b.size} bytes`);
    // Restore: into the volume it came from, by default.
    await fs.rm(path.join(volumeDir, 'db.sql'));
    const restoresOk = () => page.locator('[data-testid="backup-run-row"][data-op="restore"][data-status="ok"]').count();
    const before = await restoresOk();
    await row('photos-db').getByTestId('backup-restore').click();
    await page.getByTestId('confirm').waitFor();
    assert.equal(await page.getByTestId('restore-kind').inputValue(), 'volume');
    assert.equal(await page.getByTestId('restore-volume').inputValue(), VOLUME);
    await page.getByTestId('confirm-ok').click();
    await page.getByTestId('confirm').waitFor({ state: 'detached' });
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="backup-run-row"][data-op="restore"][data-status="ok"]').length > n, before, { timeout: 30_000 });
    assert.equal(await fs.readFile(path.join(volumeDir, 'db.sql'), 'utf8'), 'create table photos (id int);\n');
    assert.deepEqual(problems, [], problems.join('\n'));
  });
});
