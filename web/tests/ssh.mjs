// The SSH screen in a real browser, against a real OpenSSH server: `twinbay
// hub` on a free loopback port and a private `sshd -D -e` on another (its own
// host key, as crates/cli/tests/e2e/ssh.rs starts it) letting in a throwaway
// login whose authorized_keys holds the hub's public key, copied from the
// screen. The admin opens SSH from the navigation and copies the key; a
// wrongly typed host key fingerprint is refused, clearly, and nothing is
// added; an agentless host added without one shows the host's fingerprint
// (the one `ssh-keygen -lf` prints) for confirmation, is added once
// confirmed, and its node is read over SSH (connected, the memory this
// machine has); Check connection says OK; a viewer gets no SSH navigation,
// a plain "for admins" page and the hub's 403; axe-core in both themes. Then
// sshd comes back with a new host key: the list, read again every few seconds,
// shows the host's security state without a reload (the form's draft and focus
// kept), and Check connection names the new key; Remove asks first, and the
// host is gone from the list and the hub.
//
// Needs root (useradd/userdel) and /usr/sbin/sshd.
// Run: TWINBAY_BIN=… node --experimental-websocket --test web/tests/ssh.mjs
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM, TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SHOTS, shot, signIn, startHub, stopProcess, watchConsole, launchBrowser, allowHttpErrors, apiAs, getJson, stepper, sleep, freePort, until } from './harness.mjs';
import { A11yAudit } from './axe.mjs';

const run = promisify(execFile);
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const VIEWER = { username: 'vera.viewer', password: `pw-${randomBytes(9).toString('hex')}`, role: 'viewer' };
const LOGIN = `tbw${process.pid % 100_000}`; // the throwaway login sshd lets in
const INTERVAL = 3; // seconds between the agentless host's readings
const REFRESH_MS = 5000; // SshHosts.tsx reads the list again this often
const DESKTOP = { width: 1280, height: 900 };

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
const sshd = { proc: null, port: 0, dir: '' };
let browser, ctx, page;
let userAdded = false;
let target = ''; // ssh://LOGIN@127.0.0.1:PORT
let hostFingerprint = ''; // SHA256:… of sshd's host key, as ssh-keygen prints it
let nodeId = '';
let hostId = '';
const problems = [];
const allowed = [];
const audit = new A11yAudit();

/** Chrome logs every refused request: the boot's session check; the add refused on
 * purpose (unknown key 409, wrong key 409, malformed fingerprint 400); the viewer's
 * forged requests (403); the check of a host whose key changed (409). */
const allowedPaths = allowHttpErrors('401 /api/v1/session', '409 /api/v1/ssh/hosts', '400 /api/v1/ssh/hosts', '403 /api/v1/ssh/hosts', '403 /api/v1/ssh/identity');
const allowedHttpError = (msg) =>
  allowedPaths(msg) || (/status of 409/.test(msg.text()) && /^\/api\/v1\/ssh\/hosts\/ssh-[0-9a-f]+\/check$/.test(new URL(msg.location()?.url || '/', 'http://x').pathname));
const api = (method, pathname, body) => apiAs(ctx, hub, method, pathname, body);
const steps = stepper(it, () => page, () => hub.dir);
const { step } = steps;

process.on('exit', () => {
  for (const p of [hub.proc, sshd.proc]) try { p?.kill('SIGKILL'); } catch { /* already gone */ }
  if (userAdded) try { execFileSync('userdel', ['-r', '-f', LOGIN], { stdio: 'ignore' }); } catch { /* gone or busy */ }
});

/** `SHA256:…` of a public key file, as `ssh-keygen -lf` prints it. */
async function keygenFingerprint(file) {
  const { stdout } = await run('ssh-keygen', ['-lf', file]);
  const fp = stdout.trim().split(/\s+/)[1];
  assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/, `ssh-keygen -lf ${file}: ${stdout}`);
  return fp;
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
function listening(port) {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** A login with no password (`*`: not locked, sshd without PAM refuses locked ones) and its home in `dir`. */
async function addUser(dir) {
  await run('userdel', ['-r', LOGIN]).catch(() => {}); // a leftover of a killed run
  await run('useradd', ['-m', '-p', '*', '-s', '/bin/sh', '-d', path.join(dir, 'home'), LOGIN]);
  userAdded = true;
}

/** A new ed25519 host key for the sshd (in place of the old one, if any). */
async function newHostKey() {
  const key = path.join(sshd.dir, 'host_key');
  await fs.rm(key, { force: true });
  await fs.rm(`${key}.pub`, { force: true });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
}

/** A private sshd on a free loopback port: its own ed25519 host key, `authorized` for LOGIN only. */
async function startSshd(authorized) {
  await fs.mkdir('/run/sshd', { recursive: true }); // privilege separation directory
  await fs.writeFile(path.join(sshd.dir, 'authorized_keys'), `${authorized}\n`);
  await newHostKey();
  sshd.port = await freePort();
  await fs.writeFile(path.join(sshd.dir, 'sshd_config'), [
    `Port ${sshd.port}`, 'ListenAddress 127.0.0.1', `HostKey ${sshd.dir}/host_key`, 'PidFile none',
    `AuthorizedKeysFile ${sshd.dir}/authorized_keys`, 'UsePAM no', 'StrictModes no',
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PubkeyAuthentication yes',
    `AllowUsers ${LOGIN}`, 'LogLevel VERBOSE', '',
  ].join('\n'));
  await runSshd();
}

/** Runs the sshd as configured (its log appended to), until it listens. */
async function runSshd() {
  const log = createWriteStream(path.join(sshd.dir, 'sshd.log'), { flags: 'a' });
  sshd.proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(sshd.dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  sshd.proc.stderr.pipe(log);
  await until('sshd to listen', async () => {
    if (sshd.proc.exitCode !== null) throw new Error(`sshd exited (${sshd.proc.exitCode}); see ${sshd.dir}/sshd.log`);
    return listening(sshd.port);
  }, 15_000);
}

const readProc = (file) => { try { return readFileSync(file, 'utf8'); } catch { return ''; } };

/** `pid` and every process below it whose name starts with sshd (the server's connections). */
function sshdTree(pid) {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    let tasks = [];
    try { tasks = readdirSync(`/proc/${pids[i]}/task`); } catch { /* gone */ }
    for (const t of tasks) {
      for (const kid of readProc(`/proc/${pids[i]}/task/${t}/children`).split(/\s+/).filter(Boolean).map(Number)) {
        if (readProc(`/proc/${kid}/comm`).startsWith('sshd')) pids.push(kid);
      }
    }
  }
  return pids;
}

/** The processes running as `uid`. */
function processesOf(uid) {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    const line = readProc(`/proc/${d}/status`).split('\n').find((l) => l.startsWith('Uid:'));
    return line && line.split(/\s+/)[1] === String(uid);
  }).map(Number);
}

/** Kills the server and its connections (the login's own processes are left alone); waits for it to exit. */
async function killSshd() {
  const proc = sshd.proc;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  for (const pid of sshdTree(proc.pid).reverse()) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  await exited;
}

/** The server and its connections, then the login (userdel refuses a user with live processes). */
async function stopSshdAndUser() {
  await killSshd();
  if (!userAdded) return;
  const uid = Number((await run('id', ['-u', LOGIN]).catch(() => ({ stdout: '' }))).stdout.trim());
  if (uid > 0) {
    const deadline = Date.now() + 10_000;
    while (processesOf(uid).length && Date.now() < deadline) await sleep(100);
    // Whatever our login still runs came through our sshd: end it by pid.
    for (const pid of processesOf(uid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await run('userdel', ['-r', LOGIN]).then(() => { userAdded = false; }, (e) => console.error(`ssh: userdel ${LOGIN}: ${e.stderr || e}`));
}

/** What format.ts's bytes() shows for `n`. */
function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const navLabels = async (p) => (await p.locator('nav.nav a').allTextContents()).map((s) => s.trim());
const hostCard = (p) => p.locator(`[data-testid="ssh-host"][data-target="${target}"]`);
const isFocused = (locator) => locator.evaluate((el) => el === document.activeElement);
/** A card's check result once it says `state` (ok, failed). */
const checkResult = (card, state) => card.locator(`[data-testid="ssh-check-result"][data-state="${state}"]`);
const sshHosts = async () => getJson(ctx, hub, '/api/v1/ssh/hosts');

/** Fills the add form and submits it. */
async function submitAdd(p, { to, fingerprint = '', agentless = true, every = '' }) {
  await p.getByTestId('ssh-target').fill(to);
  await p.getByTestId('ssh-fingerprint').fill(fingerprint);
  await p.getByTestId('ssh-agentless').setChecked(agentless);
  if (agentless) await p.getByTestId('ssh-interval').fill(every);
  await p.getByTestId('ssh-add').click();
}

describe('ssh', { timeout: 300_000 }, () => {
  const t0 = performance.now();

  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-ssh-'));
    await fs.chmod(hub.dir, 0o755); // the login's home is below it
    sshd.dir = path.join(hub.dir, 'sshd');
    await fs.mkdir(sshd.dir);
    await addUser(hub.dir);
    await startHub(hub, (listen) => ['hub', '--listen', listen, '--data-dir', path.join(hub.dir, 'data')], PASSWORD);
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme: 'light', bypassCSP: true });
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc); // closes its SSH connections first
    await stopSshdAndUser();
    if (steps.failed) console.error(`ssh: kept ${hub.dir} (hub log, sshd/sshd.log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
    console.error(`ssh: total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  step("the admin opens SSH from the navigation: the hub's public key, shown and copied into a host's authorized_keys", async () => {
    await signIn(page, hub.url, 'admin', PASSWORD);
    assert.ok((await navLabels(page)).includes('SSH'), 'an admin has the SSH item');
    await page.getByTestId('nav-ssh').click();
    await page.waitForURL((u) => u.pathname === '/ssh');
    await page.getByRole('heading', { level: 1, name: 'Hosts over SSH' }).waitFor();
    const identity = await getJson(ctx, hub, '/api/v1/ssh/identity');
    const shown = page.getByTestId('ssh-public-key');
    await shown.waitFor();
    const key = await shown.inputValue();
    assert.ok(key.startsWith('ssh-ed25519 '), key);
    assert.equal(key, identity.public_key, "the screen's key is the hub's");
    // The fingerprint shown beside it is the key's, as ssh-keygen computes it.
    const keyFile = path.join(hub.dir, 'hub_key.pub');
    await fs.writeFile(keyFile, `${key}\n`);
    assert.equal(await page.getByTestId('ssh-key-fingerprint').textContent(), await keygenFingerprint(keyFile));
    await page.getByTestId('empty').getByText('No hosts added over SSH yet').waitFor();

    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: hub.url });
    await page.getByTestId('ssh-copy-key').click();
    await page.getByTestId('ssh-copied').getByText('Copied.').waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, key, 'the clipboard holds the key');
    // What a user does next: pastes it into the login's authorized_keys.
    await startSshd(copied);
    target = `ssh://${LOGIN}@127.0.0.1:${sshd.port}`;
    hostFingerprint = await keygenFingerprint(path.join(sshd.dir, 'host_key.pub'));
  });

  step('a wrongly typed host key fingerprint is refused, clearly, and nothing is added', async () => {
    // Not SHA256:… at all: the hub's 400, shown.
    await submitAdd(page, { to: target, fingerprint: 'MD5:not-a-fingerprint', every: String(INTERVAL) });
    const error = page.getByTestId('ssh-add-error');
    await error.getByText('fingerprint: "MD5:not-a-fingerprint" is not SHA256:… (as `ssh-keygen -lf` prints it)').waitFor({ timeout: 30_000 });
    // Well formed, but not the host's: the host's key is named and refused.
    const wrong = `SHA256:${'A'.repeat(43)}`;
    assert.notEqual(wrong, hostFingerprint);
    await submitAdd(page, { to: target, fingerprint: wrong, every: String(INTERVAL) });
    await error.getByText(`the host key is ${hostFingerprint}, not the ${wrong} given: refused`).waitFor({ timeout: 30_000 });
    assert.equal(await error.getAttribute('role'), 'alert', 'announced');
    assert.equal(await page.getByTestId('ssh-confirm').count(), 0, 'no confirmation offered for a key that does not match');
    assert.equal(await page.getByTestId('ssh-host').count(), 0, 'no host listed');
    await page.getByTestId('empty').getByText('No hosts added over SSH yet').waitFor();
    assert.deepEqual(await sshHosts(), [], 'nothing recorded');
    assert.deepEqual(await getJson(ctx, hub, '/api/v1/nodes'), [], 'no node');
    // The refusal of a key other than the one given is on the audit trail, by the admin.
    const denied = await getJson(ctx, hub, '/api/v1/audit?action=ssh_host.add&outcome=denied');
    assert.deepEqual(denied.map((e) => [e.actor, e.target, e.detail]), [['admin', target, `the host key is ${hostFingerprint}, not the ${wrong} given: refused`]]);
    await audit.check(page, 'ssh · light · a refused fingerprint');
  });

  step("an agentless host: the unknown key's fingerprint is shown, confirmed, and the host is added and read over SSH", async () => {
    await submitAdd(page, { to: target, fingerprint: '', every: String(INTERVAL) });
    const confirm = page.getByTestId('ssh-confirm');
    await confirm.waitFor({ timeout: 30_000 });
    assert.equal(await page.getByTestId('ssh-add-error').count(), 0, 'the earlier refusal is gone');
    assert.equal(await confirm.getAttribute('role'), 'alertdialog');
    assert.equal(await page.getByTestId('ssh-confirm-fingerprint').textContent(), hostFingerprint, "the fingerprint shown is the one `ssh-keygen -lf` prints on the host");
    assert.ok(await confirm.evaluate((el) => el === document.activeElement), 'the confirmation has the focus');
    assert.deepEqual(await sshHosts(), [], 'nothing is added before the confirmation');
    await audit.check(page, 'ssh · light · confirm the host key');

    await page.getByTestId('ssh-confirm-add').click();
    await page.getByTestId('ssh-notice').getByText(`Added ${target}: host key ${hostFingerprint} pinned.`).waitFor({ timeout: 30_000 });
    assert.equal(await confirm.count(), 0, 'the confirmation is closed');
    assert.equal(await page.getByTestId('ssh-target').inputValue(), '', 'the form is cleared');
    const card = page.locator(`[data-testid="ssh-host"][data-target="${target}"]`);
    await card.waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId('ssh-host').count(), 1);
    assert.equal(await card.getAttribute('data-agentless'), 'true');
    assert.equal(await card.getByTestId('ssh-host-fingerprint').textContent(), hostFingerprint);
    await card.getByText(`agentless · every ${INTERVAL} s`).waitFor();

    const hosts = await sshHosts();
    assert.equal(hosts.length, 1);
    assert.equal(hosts[0].target, target);
    assert.equal(hosts[0].fingerprint, hostFingerprint, 'the confirmed key is pinned');
    assert.equal(hosts[0].agentless, true);
    assert.equal(hosts[0].interval_secs, INTERVAL);
    nodeId = hosts[0].node_id;
    hostId = hosts[0].id;
    assert.ok(nodeId, 'an agentless node is recorded');
    assert.equal(await card.getByTestId('ssh-host-node').textContent(), nodeId);

    // Read over SSH: connected, with this machine's memory (the sshd is on loopback).
    const memTotal = Number(/^MemTotal:\s+(\d+) kB$/m.exec(await fs.readFile('/proc/meminfo', 'utf8'))[1]) * 1024;
    const node = await until('the agentless node connected with memory data', async () => {
      const r = await api('GET', `/api/v1/nodes/${encodeURIComponent(nodeId)}`);
      return r.status === 200 && r.json.connected === true && r.json.resources?.mem_total > 0 ? r.json : null;
    }, 90_000);
    assert.equal(node.resources.mem_total, memTotal, "the host's MemTotal");
    assert.ok(node.resources.mem_used > 0 && node.resources.mem_used <= memTotal, `mem_used ${node.resources.mem_used}`);
    assert.equal(node.agentless?.interval_secs, INTERVAL);

    // From the card to the host's page: connected, agentless, its memory.
    await card.getByTestId('ssh-host-node').click();
    await page.waitForURL((u) => u.pathname === `/hosts/${encodeURIComponent(nodeId)}`);
    await page.getByTestId('detail-status').getByText('connected', { exact: true }).waitFor({ timeout: 30_000 });
    await page.locator('.detail-head').getByText(`agentless · every ${INTERVAL} s`).waitFor();
    await page.getByTestId('agentless-missing').waitFor();
    const mem = page.getByTestId('detail-mem');
    await until('the memory on the host page', async () => /^\d+(\.\d)?%$/.test((await mem.textContent()).trim()), 30_000);
    await page.getByTestId('live-stats').getByText(new RegExp(` of ${bytes(memTotal).replace('.', '\\.')}`)).waitFor();

    await page.getByTestId('nav-ssh').click();
    await page.waitForURL((u) => u.pathname === '/ssh');
    await card.waitFor();
    await page.getByTestId('ssh-public-key').waitFor();
  });

  step('Check connection on the agentless host: OK, announced by the card, the focus kept on the button', async () => {
    const card = hostCard(page);
    const button = card.getByTestId('ssh-check');
    assert.equal(await button.textContent(), 'Check connection');
    await button.click();
    const ok = checkResult(card, 'ok');
    await ok.waitFor({ timeout: 30_000 });
    assert.match(await ok.textContent(), /^Connection OK: the host key matches the pinned one, the hub's key is accepted and a command ran \(\d+ ms\)\.$/);
    assert.equal(await ok.getAttribute('role'), 'status', 'announced');
    assert.ok(await isFocused(button), 'the focus stays on Check connection');
    assert.equal(await card.getByTestId('ssh-security').count(), 0, 'no security state');
    await audit.check(page, 'ssh · light · a connection checked');
  });

  step('a host added already is refused; another login first shows its key for confirmation, and Cancel adds nothing', async () => {
    await submitAdd(page, { to: target, fingerprint: hostFingerprint, every: String(INTERVAL) });
    await page.getByTestId('ssh-add-error').getByText(`${target} is added already`).waitFor({ timeout: 30_000 });
    // Another login on the same server: the host key is asked about again.
    await submitAdd(page, { to: `ssh://nobody@127.0.0.1:${sshd.port}`, fingerprint: '', agentless: false });
    await page.getByTestId('ssh-confirm').waitFor({ timeout: 30_000 });
    assert.equal(await page.getByTestId('ssh-confirm-fingerprint').textContent(), hostFingerprint);
    await shot(page, 'ssh.png'); // the key, a host listed, a confirmation asked
    await page.getByTestId('ssh-confirm-cancel').click();
    await page.getByTestId('ssh-confirm').waitFor({ state: 'detached' });
    assert.equal((await sshHosts()).length, 1, 'still one host');
    assert.equal(await page.getByTestId('ssh-host').count(), 1);
  });

  step('axe-core: no WCAG 2.1 A/AA violations on the SSH screen, light and dark', async () => {
    await audit.check(page, 'ssh · light · a host listed');
    const dark = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme: 'dark', bypassCSP: true });
    try {
      const p = await dark.newPage();
      watchConsole(p, allowedHttpError, problems, allowed);
      await signIn(p, hub.url, 'admin', PASSWORD);
      await p.goto(`${hub.url}/ssh`);
      assert.equal(await p.evaluate(() => document.documentElement.dataset.theme), 'dark');
      await p.locator('[data-testid="ssh-host"]').waitFor();
      await p.getByTestId('ssh-public-key').waitFor();
      await audit.check(p, 'ssh · dark · a host listed');
      await submitAdd(p, { to: `ssh://nobody@127.0.0.1:${sshd.port}`, agentless: false });
      await p.getByTestId('ssh-confirm').waitFor({ timeout: 30_000 });
      await audit.check(p, 'ssh · dark · confirm the host key');
    } finally {
      await dark.close();
    }
    audit.assertClean();
  });

  step('a viewer has no SSH item, reads "for admins" at /ssh, and the hub refuses its requests', async () => {
    const created = await api('POST', '/api/v1/users', VIEWER);
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const vctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
    try {
      const v = await vctx.newPage();
      watchConsole(v, allowedHttpError, problems, allowed);
      await signIn(v, hub.url, VIEWER.username, VIEWER.password);
      assert.match(await v.getByTestId('user').textContent(), /viewer/);
      const labels = await navLabels(v);
      assert.ok(labels.includes('Hosts') && !labels.includes('SSH'), labels.join(', '));
      assert.equal(await v.getByTestId('nav-ssh').count(), 0);
      await v.goto(`${hub.url}/ssh`);
      await v.getByTestId('forbidden').getByText('Hosts over SSH are for admins').waitFor({ timeout: 10_000 });
      for (const id of ['ssh-public-key', 'ssh-add-form', 'ssh-host']) assert.equal(await v.getByTestId(id).count(), 0, `no ${id}`);
      const forged = await v.evaluate(async (to) => {
        const post = await fetch('/api/v1/ssh/hosts', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ target: to, agentless: true }) });
        const identity = await fetch('/api/v1/ssh/identity');
        return { post: post.status, message: (await post.json()).error?.message, identity: identity.status };
      }, `ssh://root@127.0.0.1:${sshd.port}`);
      assert.deepEqual(forged, { post: 403, message: 'this needs the admin role', identity: 403 });
      assert.equal((await sshHosts()).length, 1, 'nothing added');
    } finally {
      await vctx.close();
    }
  });

  step("sshd back with a new host key: the list shows it within the refresh period, without a reload, the form's draft and focus kept; Check connection names the new key", async () => {
    const card = hostCard(page);
    await page.evaluate(() => { window.sshSamePage = true; });
    // A draft in the form, focused: the list's refreshes must leave both alone.
    const draft = page.getByTestId('ssh-target');
    await draft.fill('ssh://draft@192.0.2.1');
    await draft.focus();
    let reads = 0;
    const onRequest = (r) => { if (r.method() === 'GET' && new URL(r.url()).pathname === '/api/v1/ssh/hosts') reads++; };
    page.on('request', onRequest);
    try {
      await killSshd();
      await newHostKey();
      const newFingerprint = await keygenFingerprint(path.join(sshd.dir, 'host_key.pub'));
      assert.notEqual(newFingerprint, hostFingerprint);
      await runSshd(); // the same port and config
      // The hub finds the change (a check from elsewhere; the host's readings would too), the page is not told.
      const checked = await api('POST', `/api/v1/ssh/hosts/${hostId}/check`);
      assert.equal(checked.status, 409, JSON.stringify(checked.json));
      const refusal = `the host key changed from the pinned ${hostFingerprint} to ${newFingerprint}: refused`;
      assert.equal(checked.json.error.message, refusal);
      const found = performance.now();
      // Within one refresh (plus a loaded machine's slack), no reload.
      const security = card.getByTestId('ssh-security');
      await security.waitFor({ timeout: REFRESH_MS + 5000 });
      console.error(`ssh: the changed key shown ${((performance.now() - found) / 1000).toFixed(1)} s after the hub found it`);
      assert.equal(await security.textContent(), `Host key changed: pinned ${hostFingerprint}, the host now shows ${newFingerprint}. Connections are refused; if the change is expected, remove the host and add it again.`);
      assert.equal(await security.getAttribute('role'), 'alert');
      assert.equal(await card.getAttribute('data-security'), 'host_key_changed');
      assert.equal(await card.getByTestId('ssh-host-fingerprint').textContent(), hostFingerprint, 'the pin stays');
      assert.ok(reads >= 1, `the list was read again (${reads} reads)`);
      assert.equal(await page.evaluate(() => window.sshSamePage), true, 'the page was not reloaded');
      assert.equal(await draft.inputValue(), 'ssh://draft@192.0.2.1', "the form's draft is kept");
      assert.ok(await isFocused(draft), 'the focus stays in the form');

      // Check connection, on the page: refused, naming the key the host now shows.
      const button = card.getByTestId('ssh-check');
      await button.click();
      const failed = checkResult(card, 'failed');
      await failed.waitFor({ timeout: 30_000 });
      assert.equal(await failed.textContent(), `Check failed: ${refusal}`);
      assert.equal(await checkResult(card, 'ok').count(), 0, 'the earlier OK is replaced');
      assert.ok(await isFocused(button), 'the focus stays on Check connection');
      const host = await getJson(ctx, hub, `/api/v1/ssh/hosts/${hostId}`);
      assert.deepEqual([host.security?.state, host.security?.pinned, host.security?.seen, host.fingerprint], ['host_key_changed', hostFingerprint, newFingerprint, hostFingerprint]);
      await audit.check(page, 'ssh · light · the host key changed');
      await draft.fill('');
    } finally {
      page.off('request', onRequest);
    }
  });

  step('Remove asks first (Cancel keeps the host); confirmed, the host is gone from the list and the hub, and stays gone', async () => {
    const card = hostCard(page);
    const remove = card.getByTestId('ssh-remove');
    await remove.click();
    const dialog = page.getByTestId('confirm');
    await dialog.waitFor();
    assert.equal(await dialog.getByRole('heading', { level: 2 }).textContent(), `Remove ${target}?`);
    assert.equal(await dialog.evaluate((d) => d.open && d.matches(':modal')), true, 'a modal dialog');
    assert.ok(await isFocused(page.getByTestId('confirm-cancel')), 'Cancel has the focus');
    await audit.check(page, 'ssh · light · confirm the removal');
    await page.getByTestId('confirm-cancel').click();
    await dialog.waitFor({ state: 'detached' });
    assert.ok(await isFocused(remove), 'the focus is back on Remove');
    assert.equal((await sshHosts()).length, 1, 'Cancel removes nothing');
    assert.equal(await page.getByTestId('ssh-host').count(), 1);

    await remove.click();
    await dialog.waitFor();
    await page.getByTestId('confirm-ok').click();
    const notice = page.getByTestId('ssh-removed');
    await notice.getByText(`Removed ${target}: its pinned host key and connection are forgotten.`).waitFor({ timeout: 30_000 });
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await notice.getAttribute('role'), 'status');
    assert.ok(await isFocused(notice), 'the focus goes to the notice, the host gone');
    assert.equal(await page.getByTestId('ssh-host').count(), 0, 'gone from the list');
    await page.getByTestId('empty').getByText('No hosts added over SSH yet').waitFor();
    assert.deepEqual(await sshHosts(), [], 'gone from the hub');
    assert.equal((await api('GET', `/api/v1/ssh/hosts/${hostId}`)).status, 404);
    const removed = await getJson(ctx, hub, '/api/v1/audit?action=ssh_host.remove');
    assert.deepEqual(removed.map((e) => [e.actor, e.target, e.detail, e.outcome]), [['admin', `ssh:${hostId}`, target, 'ok']]);
    // Two more reads of the list later (the first answered before the second
    // starts, a refresh apart): still gone.
    const isRead = (r) => r.method() === 'GET' && new URL(r.url()).pathname === '/api/v1/ssh/hosts';
    await page.waitForRequest(isRead, { timeout: REFRESH_MS + 10_000 });
    await page.waitForRequest(isRead, { timeout: REFRESH_MS + 10_000 });
    assert.equal(await page.getByTestId('ssh-host').count(), 0, 'still gone after refreshes');
    await audit.check(page, 'ssh · light · a host removed');
    audit.assertClean();
  });

  step('no console errors beyond the refusals made on purpose', async () => {
    assert.deepEqual(problems, []);
    assert.ok(allowed.length >= 4, `the deliberate refusals were seen: ${allowed.length}`);
  });
});
