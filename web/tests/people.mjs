// People, permissions and the audit trail in a real browser: starts
// `twinbay hub` on a free loopback port with a fresh data dir and drives the
// embedded UI in Debian's Chromium through playwright-core. An admin creates an
// operator and a viewer through the UI; the viewer sees no admin navigation or
// actions and a forged request from its page is refused; the operator changes
// its own password and signs out everywhere; the admin creates and revokes an
// API token (its secret shown once), reads the audit trail, and removes a user;
// a locked-out sign-in says so.
//
// Run: bash scripts/browser-test.sh (or node --experimental-websocket --test web/tests/people.mjs)
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM (default /usr/bin/chromium),
//      TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHOTS, shot, startHub as startHubProcess, stopProcess, watchConsole, signIn as signInAt, launchBrowser } from './harness.mjs';

const DESKTOP = { width: 1280, height: 800 };
const pw = (tag) => `${tag}-${randomBytes(8).toString('hex')}`;
const ADMIN_PW = pw('admin');
const OPERATOR = { name: 'olivia.op', pw: pw('op'), role: 'operator' };
const VIEWER = { name: 'victor@view', pw: pw('view'), role: 'viewer' };
const OPERATOR_NEW_PW = pw('op-new');

const hub = { proc: null, port: 0, dir: '', url: '', log: '' };
let browser;
let admin; // { ctx, p } signed in as admin throughout
let failed = false;
let lastPage; // the newest page, for a screenshot on failure
const problems = []; // console errors and uncaught page errors
const allowed = [];

// Chrome logs every non-2xx response as a console error. These are the
// deliberate ones: [status, path pattern].
const EXPECTED = [
  [401, /^\/api\/v1\/session$/], // boot while signed out; wrong passwords
  [429, /^\/api\/v1\/session$/], // the locked-out sign-in
  [409, /^\/api\/v1\/users(\/\d+)?$/], // a taken name; the last admin
  [403, /^\/api\/v1\/users$/], // the viewer's forged request
  [403, /^\/api\/v1\/audit$/], // the viewer's forged read
  [403, /^\/api\/v1\/session\/password$/], // a wrong current password
];
function expectedHttpError(msg) {
  const m = /status of (\d{3})/.exec(msg.text());
  if (!m) return false;
  const pathname = new URL(msg.location()?.url || '/', 'http://x').pathname;
  return EXPECTED.some(([status, re]) => Number(m[1]) === status && re.test(pathname));
}


async function startHub() {
  hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-people-'));
  const data = path.join(hub.dir, 'data');
  await startHubProcess(hub, (listen) => ['hub', '--listen', listen, '--data-dir', data], ADMIN_PW);
}

async function stopHub() {
  await stopProcess(hub.proc);
}
process.on('exit', () => { try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ } });

async function newPage(colorScheme = 'light') {
  const ctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme });
  const p = await ctx.newPage();
  lastPage = p;
  watchConsole(p, expectedHttpError, problems, allowed);
  return { ctx, p };
}

/** Signs in through the form on a fresh page; waits for the shell. */
async function signIn(p, username, password) {
  await signInAt(p, hub.url, username, password);
  assert.ok((await p.getByTestId('user').textContent()).startsWith(`${username} `), 'the top bar names who signed in');
}

/** The hub's API with a page's session cookie (from outside the browser). */
async function apiAs(ctx, pathname) {
  const state = await ctx.storageState();
  const cookie = state.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const r = await fetch(`${hub.url}${pathname}`, { headers: { cookie } });
  return { status: r.status, body: r.status === 200 ? await r.json() : null };
}

const onScreen = (u, name) => u.pathname === `/${name}`;

const navLabels = async (p) => (await p.locator('nav.nav a').allTextContents()).map((s) => s.trim());

// Every step depends on the ones before it; after a failure the rest are skipped.
function step(name, fn) {
  it(name, async (t) => {
    if (failed) return t.skip('an earlier step failed');
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      if (admin) await admin.p.screenshot({ path: path.join(hub.dir, 'failure-admin.png') }).catch(() => {});
      if (lastPage && lastPage !== admin?.p) await lastPage.screenshot({ path: path.join(hub.dir, 'failure-last.png') }).catch(() => {});
      throw err;
    }
  });
}

describe('twinbay people, permissions and audit (real browser)', { timeout: 180_000 }, () => {
  const t0 = performance.now();

  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    await startHub();
    browser = await launchBrowser();
    admin = await newPage();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopHub();
    if (failed) console.error(`people: kept ${hub.dir} (hub log, failure png). Hub log tail:\n${hub.log.split('\n').slice(-40).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
    console.error(`people: total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  step('the admin sees the admin navigation and creates an operator and a viewer through the UI', async () => {
    const { p } = admin;
    await signIn(p, 'admin', ADMIN_PW);
    assert.deepEqual(await navLabels(p), ['Overview', 'Hosts', 'Containers', 'Units', 'Routes', 'Schedules', 'Backups', 'Alerts', 'Updates', 'Events', 'Changes', 'Network', 'World', 'Audit', 'SSH', 'Settings']);
    await p.getByTestId('nav-settings').click();
    await p.waitForURL((u) => onScreen(u, 'settings/account'));
    assert.deepEqual((await p.getByRole('tab').allTextContents()).map((s) => s.trim()), ['Account', 'Users', 'API tokens']);
    await p.getByTestId('settings-tab-users').click();
    await p.waitForURL((u) => onScreen(u, 'settings/users'));
    await p.locator('[data-testid="user-row"][data-username="admin"]').waitFor();
    assert.equal(await p.getByTestId('user-row').count(), 1, 'only the first admin so far');

    // Client-side checks first: nothing is sent.
    await p.getByTestId('new-user-name').fill(OPERATOR.name);
    await p.getByTestId('new-user-password').fill('short');
    await p.getByTestId('new-user-submit').click();
    assert.equal(await p.getByTestId('new-user-error').textContent(), 'password: at least 12 characters');
    await p.getByTestId('new-user-name').fill('no spaces allowed');
    await p.getByTestId('new-user-password').fill(OPERATOR.pw);
    await p.getByTestId('new-user-submit').click();
    assert.match(await p.getByTestId('new-user-error').textContent(), /^username: 1 to 64 of/);

    for (const u of [OPERATOR, VIEWER]) {
      await p.getByTestId('new-user-name').fill(u.name);
      await p.getByTestId('new-user-password').fill(u.pw);
      await p.getByTestId('new-user-role').selectOption(u.role);
      await p.getByTestId('new-user-submit').click();
      await p.locator(`[data-testid="user-row"][data-username="${u.name}"][data-role="${u.role}"]`).waitFor({ timeout: 5000 });
      assert.equal(await p.getByTestId('users-notice').textContent(), `Added ${u.name}.`);
      assert.equal(await p.getByTestId('new-user-name').inputValue(), '', 'the form is cleared');
    }
    assert.equal(await p.getByTestId('users-count').textContent(), '3 users');
    const listed = (await apiAs(admin.ctx, '/api/v1/users')).body.map((u) => `${u.username}:${u.role}`).sort();
    assert.deepEqual(listed, ['admin:admin', `${OPERATOR.name}:operator`, `${VIEWER.name}:viewer`]);

    // A taken name: the hub's 409, shown.
    await p.getByTestId('new-user-name').fill(VIEWER.name);
    await p.getByTestId('new-user-password').fill(pw('dup'));
    await p.getByTestId('new-user-submit').click();
    await p.getByTestId('new-user-error').getByText('a user with that name exists').waitFor({ timeout: 5000 });

    // The last admin cannot be demoted: the 409 is shown and the role stays.
    const adminRow = p.locator('[data-testid="user-row"][data-username="admin"]');
    await adminRow.getByTestId('user-role').selectOption('viewer');
    await p.getByTestId('users-error').getByText('admin: the last admin cannot be removed or demoted').waitFor({ timeout: 5000 });
    await p.waitForFunction(() => document.querySelector('[data-testid="user-row"][data-username="admin"] select')?.value === 'admin');
    assert.equal(await adminRow.getAttribute('data-role'), 'admin');
    await shot(p, 'users.png');
  });

  step('the viewer sees no admin navigation or actions, and a forged request from its page is refused', async () => {
    const v = await newPage();
    try {
      await signIn(v.p, VIEWER.name, VIEWER.pw);
      assert.match(await v.p.getByTestId('user').textContent(), /viewer/);
      assert.deepEqual(await navLabels(v.p), ['Overview', 'Hosts', 'Containers', 'Units', 'Routes', 'Schedules', 'Backups', 'Alerts', 'Updates', 'Events', 'Changes', 'Network', 'World', 'Settings']);
      await v.p.getByTestId('nav-settings').click();
      await v.p.getByTestId('password-form').waitFor();
      assert.deepEqual((await v.p.getByRole('tab').allTextContents()).map((s) => s.trim()), ['Account']);
      // Typed URLs of admin screens: a plain "for admins" state, no forms, no buttons.
      for (const [url, title] of [['/settings/users', 'Users: for admins only'], ['/settings/tokens', 'API tokens: for admins only'], ['/audit', 'The audit trail is for admins']]) {
        await v.p.goto(`${hub.url}${url}`);
        await v.p.getByTestId('forbidden').getByText(title).waitFor({ timeout: 5000 });
        for (const id of ['new-user-form', 'user-remove', 'user-role', 'new-token-form', 'token-revoke', 'audit-table']) {
          assert.equal(await v.p.getByTestId(id).count(), 0, `${url}: no ${id}`);
        }
      }
      // What the page could do anyway is refused by the hub (a same-origin fetch carries the cookie and the Origin).
      const forged = await v.p.evaluate(async () => {
        const post = await fetch('/api/v1/users', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ username: 'mallory', password: 'mallory-password-1', role: 'admin' }),
        });
        const audit = await fetch('/api/v1/audit');
        return { post: post.status, body: await post.json(), audit: audit.status };
      });
      assert.equal(forged.post, 403);
      assert.equal(forged.body.error.message, 'this needs the admin role');
      assert.equal(forged.audit, 403);
      const names = (await apiAs(admin.ctx, '/api/v1/users')).body.map((u) => u.username);
      assert.ok(!names.includes('mallory'), 'no user was created');
    } catch (err) {
      await v.p.screenshot({ path: path.join(hub.dir, 'failure-viewer.png') }).catch(() => {});
      throw err;
    } finally {
      await v.ctx.close();
    }
  });

  step('the admin limits the viewer to a host group, then lifts the limit', async () => {
    const { p } = admin;
    await p.getByTestId('settings-tab-users').click();
    await p.waitForURL((u) => onScreen(u, 'settings/users'));
    const row = p.locator(`[data-testid="user-row"][data-username="${VIEWER.name}"]`);
    const setGroups = async (text) => {
      await row.getByTestId('user-groups').click();
      await p.getByTestId('groups-input').fill(text);
      await p.getByTestId('groups-submit').click();
    };
    await setGroups('not a label');
    assert.equal(await p.getByTestId('groups-error').textContent(), 'host groups: "not a label" is not a label like site=lab');
    await p.getByTestId('groups-input').fill('site=lab, group=web');
    await p.getByTestId('groups-submit').click();
    await p.getByTestId('users-notice').getByText(`${VIEWER.name} now sees only site=lab, group=web.`).waitFor({ timeout: 5000 });
    await row.getByTestId('groups').getByText('only site=lab, group=web').waitFor();
    const groupsOf = async () => (await apiAs(admin.ctx, '/api/v1/users')).body.find((u) => u.username === VIEWER.name).groups ?? null;
    assert.deepEqual(await groupsOf(), ['site=lab', 'group=web']);
    // The form opens with the current groups; emptied, it lifts the limit.
    await row.getByTestId('user-groups').click();
    assert.equal(await p.getByTestId('groups-input').inputValue(), 'site=lab, group=web');
    await p.getByTestId('groups-input').fill('');
    await p.getByTestId('groups-submit').click();
    await p.getByTestId('users-notice').getByText(`${VIEWER.name} now sees every host.`).waitFor({ timeout: 5000 });
    await row.getByTestId('groups').waitFor({ state: 'detached', timeout: 5000 });
    assert.equal(await groupsOf(), null);
  });

  step('the operator changes its own password on the Account screen, then signs out everywhere', async () => {
    const o = await newPage();
    const other = await newPage(); // a second session of the operator's, elsewhere
    try {
      await signIn(other.p, OPERATOR.name, OPERATOR.pw);
      await signIn(o.p, OPERATOR.name, OPERATOR.pw);
      assert.deepEqual(await navLabels(o.p), ['Overview', 'Hosts', 'Containers', 'Units', 'Routes', 'Schedules', 'Backups', 'Alerts', 'Updates', 'Events', 'Changes', 'Network', 'World', 'Settings']);
      await o.p.getByTestId('user').click(); // the name in the top bar leads to the account
      await o.p.waitForURL((u) => onScreen(u, 'settings/account'));
      const form = o.p.getByTestId('password-form');
      await form.waitFor();
      const submit = async (current, next, again = next) => {
        await o.p.getByTestId('pw-current').fill(current);
        await o.p.getByTestId('pw-new').fill(next);
        await o.p.getByTestId('pw-confirm').fill(again);
        await o.p.getByTestId('pw-submit').click();
      };
      await submit(OPERATOR.pw, 'too-short');
      assert.equal(await o.p.getByTestId('pw-error').textContent(), 'the new password needs at least 12 characters');
      await submit(OPERATOR.pw, OPERATOR_NEW_PW, `${OPERATOR_NEW_PW}x`);
      assert.equal(await o.p.getByTestId('pw-error').textContent(), 'the new password and its confirmation differ');
      await submit(`${OPERATOR.pw}-wrong`, OPERATOR_NEW_PW);
      await o.p.getByTestId('pw-error').getByText('the current password is wrong').waitFor({ timeout: 5000 });
      await submit(OPERATOR.pw, OPERATOR_NEW_PW);
      // The other session's open page hears at once, and says why.
      await other.p.getByTestId('signin-notice').getByText('your session ended; sign in again').waitFor({ timeout: 5000 });
      assert.equal(new URL(other.p.url()).pathname, '/signin');
      await o.p.getByTestId('pw-done').getByText(/^Password changed\. Your other sessions were signed out/).waitFor({ timeout: 5000 });
      assert.equal(await o.p.getByTestId('pw-current').inputValue(), '', 'the form is cleared');
      await shot(o.p, 'account.png');
      // This session stays; the other one ended.
      assert.equal((await apiAs(o.ctx, '/api/v1/session')).status, 200);
      assert.equal((await apiAs(other.ctx, '/api/v1/session')).status, 401);
      // The new password signs in; the old one does not.
      const r = await fetch(`${hub.url}/api/v1/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: OPERATOR.name, password: OPERATOR.pw }) });
      assert.equal(r.status, 401, 'the old password is refused');
      await signIn(other.p, OPERATOR.name, OPERATOR_NEW_PW);

      // Sign out everywhere, with a confirmation: both sessions end.
      await o.p.getByTestId('signout-everywhere').click();
      const dialog = o.p.getByTestId('confirm');
      await dialog.waitFor();
      assert.equal(await o.p.evaluate(() => document.activeElement?.dataset.testid), 'confirm-cancel', 'focus starts on Cancel');
      await o.p.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      assert.equal((await apiAs(o.ctx, '/api/v1/session')).status, 200, 'Escape cancelled');
      await o.p.getByTestId('signout-everywhere').click();
      await o.p.getByTestId('confirm-ok').click();
      await o.p.getByTestId('signin-form').waitFor({ timeout: 5000 });
      assert.equal(new URL(o.p.url()).pathname, '/signin');
      assert.equal((await apiAs(o.ctx, '/api/v1/session')).status, 401);
      assert.equal((await apiAs(other.ctx, '/api/v1/session')).status, 401);
    } catch (err) {
      await o.p.screenshot({ path: path.join(hub.dir, 'failure-operator.png') }).catch(() => {});
      throw err;
    } finally {
      await o.ctx.close();
      await other.ctx.close();
    }
  });

  let tokenSecret = '';
  step('the admin creates an API token (its secret shown once) and revokes it', async () => {
    const { p } = admin;
    await p.getByTestId('settings-tab-tokens').click();
    await p.waitForURL((u) => onScreen(u, 'settings/tokens'));
    await p.getByTestId('tokens-empty').waitFor();
    await p.getByTestId('new-token-name').fill('grafana');
    await p.getByTestId('new-token-role').selectOption('viewer');
    await p.getByTestId('new-token-expiry').selectOption({ label: 'in 7 days' });
    const created = Date.now();
    await p.getByTestId('new-token-submit').click();
    const secret = p.getByTestId('token-secret');
    await secret.waitFor({ timeout: 5000 });
    assert.match(await secret.textContent(), /Copy it now: you won't see it again\./);
    tokenSecret = await p.getByTestId('token-secret-value').inputValue();
    assert.match(tokenSecret, /^tbk_\S{20,}$/);
    const row = p.locator('[data-testid="token-row"][data-name="grafana"]');
    await row.waitFor(); // the list as read after the creation, before any use
    assert.equal(await row.getAttribute('data-status'), 'active');
    const cells = (await row.locator('td').allTextContents()).map((s) => s.trim());
    assert.equal(cells[1], 'viewer');
    assert.match(cells[3], /\(in 6d 23h\)$/, 'expires in 7 days');
    assert.equal(cells[4], 'never', 'not used when the list was read');
    // It is the real thing.
    const bearer = () => fetch(`${hub.url}/api/v1/nodes`, { headers: { Authorization: `Bearer ${tokenSecret}` } }).then((r) => r.status);
    assert.equal(await bearer(), 200);
    // Copy puts it on the clipboard.
    await admin.ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: hub.url });
    await p.getByTestId('token-copy').click();
    await p.getByTestId('token-copied').getByText('Copied.').waitFor();
    assert.equal(await p.evaluate(() => navigator.clipboard.readText()), tokenSecret);
    await p.getByTestId('settings-tab-tokens').focus(); // no focus ring on the screenshot's buttons
    await shot(p, 'tokens.png');

    // Done: the secret is gone from the page, and the list never carries it.
    await p.getByTestId('token-secret-done').click();
    await secret.waitFor({ state: 'detached' });
    assert.ok(!(await p.content()).includes(tokenSecret), 'the secret is no longer anywhere in the page');
    assert.ok(!JSON.stringify((await apiAs(admin.ctx, '/api/v1/tokens')).body).includes(tokenSecret.slice(4)), 'the list does not carry it');
    await p.reload();
    await row.waitFor();
    assert.equal(await p.getByTestId('token-secret').count(), 0, 'not shown again after a reload');
    assert.match((await row.locator('td').nth(4).textContent()).trim(), /^(just now|\d+s ago|\dm ago)$/, 'last used: by the check above');
    assert.ok(Date.now() - created < 60_000);

    // Revoke, confirmed.
    await row.getByTestId('token-revoke').click();
    await p.getByTestId('confirm').getByText('Revoke “grafana”?').waitFor();
    await p.getByTestId('confirm-ok').click();
    await p.locator('[data-testid="token-row"][data-name="grafana"][data-status="revoked"]').waitFor({ timeout: 5000 });
    assert.equal(await row.getByTestId('token-revoke').count(), 0, 'a revoked token offers no revoke');
    assert.equal(await p.getByTestId('tokens-notice').textContent(), 'Revoked “grafana”.');
    assert.equal(await bearer(), 401, 'the hub refuses it now');
  });

  step('the admin creates a token limited to a host group', async () => {
    const { p } = admin;
    await p.getByTestId('new-token-name').fill('lab-only');
    await p.getByTestId('new-token-groups').fill('site=lab, nonsense');
    await p.getByTestId('new-token-submit').click();
    assert.match(await p.getByTestId('new-token-error').textContent(), /"nonsense" is not a label like site=lab/);
    await p.getByTestId('new-token-groups').fill('site=lab, group=web');
    await p.getByTestId('new-token-submit').click();
    await p.getByTestId('token-secret').waitFor({ timeout: 5000 });
    const scoped = await p.getByTestId('token-secret-value').inputValue();
    await p.getByTestId('token-secret-done').click();
    const row = p.locator('[data-testid="token-row"][data-name="lab-only"]');
    await row.waitFor();
    assert.equal((await row.getByTestId('groups').textContent()).trim(), 'only site=lab, group=web');
    const listed = (await apiAs(admin.ctx, '/api/v1/tokens')).body.find((t) => t.name === 'lab-only');
    assert.deepEqual(listed.groups, ['site=lab', 'group=web']);
    // What it may see is the hub's to enforce (tests/e2e/groups.rs); here, that it works at all.
    const status = await fetch(`${hub.url}/api/v1/nodes`, { headers: { Authorization: `Bearer ${scoped}` } }).then((r) => r.status);
    assert.equal(status, 200);
  });

  step('the admin creates a read-only token: the list says so, the API refuses its writes', async () => {
    const { p } = admin;
    const box = p.getByRole('checkbox', { name: 'Read-only' });
    assert.equal(await box.isChecked(), false, 'off unless asked for');
    await p.getByTestId('new-token-name').fill('assistant');
    await p.getByTestId('new-token-role').selectOption('operator');
    await box.check();
    await p.getByTestId('new-token-submit').click();
    await p.getByTestId('token-secret').waitFor({ timeout: 5000 });
    const readOnly = await p.getByTestId('token-secret-value').inputValue();
    await p.getByTestId('token-secret-done').click();
    const row = p.locator('[data-testid="token-row"][data-name="assistant"]');
    await row.waitFor();
    assert.equal((await row.getByTestId('token-read-only').textContent()).trim(), '· read-only');
    const listed = (await apiAs(admin.ctx, '/api/v1/tokens')).body.find((t) => t.name === 'assistant');
    assert.deepEqual([listed.role, listed.read_only], ['operator', true]);
    assert.equal(await box.isChecked(), false, 'the form starts over unticked');
    // An operator's write, refused because the token is read-only (an
    // ordinary operator token would get 404 for the missing host).
    const as = (method, url, body) =>
      fetch(`${hub.url}${url}`, { method, headers: { Authorization: `Bearer ${readOnly}`, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
    assert.equal((await as('GET', '/api/v1/nodes')).status, 200, 'it reads');
    const write = await as('POST', '/api/v1/nodes/n_nosuchnode/commands', { op: 'restart', target: { kind: 'container', name: 'web' } });
    assert.equal(write.status, 403);
    assert.match((await write.json()).error.message, /read-only/);
  });

  step('a locked-out sign-in says so', async () => {
    // Five wrong passwords for the viewer lock the name; the next attempt, even right, gets 429.
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${hub.url}/api/v1/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: VIEWER.name, password: `wrong-${i}-password` }) });
      assert.equal(r.status, 401);
    }
    const l = await newPage();
    try {
      await l.p.goto(`${hub.url}/`);
      await l.p.getByTestId('signin-username').fill(VIEWER.name);
      await l.p.getByTestId('signin-password').fill(VIEWER.pw);
      await l.p.getByTestId('signin-submit').click();
      const error = l.p.getByTestId('signin-error');
      await error.waitFor({ timeout: 5000 });
      assert.match(await error.textContent(), /^too many failed sign-ins; try again later \(in about \d+s\)$/);
      assert.equal(await l.p.locator('#shell').count(), 0);
    } finally {
      await l.ctx.close();
    }
  });

  step('the audit trail lists the sign-ins, the user changes and the token, newest first, filtered and paged', async () => {
    const { p } = admin;
    await p.getByTestId('nav-audit').click();
    await p.waitForURL((u) => onScreen(u, 'audit'));
    await p.getByTestId('audit-row').first().waitFor({ timeout: 5000 });
    const api = (await apiAs(admin.ctx, '/api/v1/audit?limit=1000')).body;
    const rows = p.getByTestId('audit-row');
    assert.equal(await rows.count(), Math.min(100, api.length));
    const ids = (await rows.evaluateAll((rs) => rs.map((r) => Number(r.dataset.id))));
    assert.deepEqual(ids, api.slice(0, 100).map((e) => e.id), 'newest first, as the hub has them');
    const has = async (sel) => assert.ok((await p.locator(`[data-testid="audit-row"]${sel}`).count()) > 0, `a row ${sel}`);
    for (const who of ['admin', OPERATOR.name, VIEWER.name]) await has(`[data-action="session.sign_in"][data-actor="${who}"][data-outcome="ok"]`);
    for (const u of [OPERATOR, VIEWER]) await has(`[data-action="user.create"][data-actor="admin"][data-target="${u.name}"]`);
    await has(`[data-action="user.password"][data-target="${OPERATOR.name}"][data-outcome="ok"]`);
    await has(`[data-action="user.password"][data-target="${OPERATOR.name}"][data-outcome="denied"]`);
    await has('[data-action="api_token.create"]');
    await has('[data-action="api_token.revoke"]');
    await has('[data-action="session.sign_out_everywhere"]');
    // One row in full: time, actor and kind, address, action, target, outcome, detail, short hash.
    const create = api.find((e) => e.action === 'user.create' && e.target === OPERATOR.name);
    const cells = (await p.locator(`[data-testid="audit-row"][data-id="${create.id}"] td`).allTextContents()).map((s) => s.trim());
    assert.equal(cells.length, 8);
    assert.match(cells[0], /^\d{2}:\d{2}:\d{2}/);
    assert.equal(cells[1], 'adminuser');
    assert.equal(cells[2], create.address || '—');
    assert.deepEqual(cells.slice(3, 7), ['user.create', OPERATOR.name, 'ok', 'role operator']);
    assert.equal(cells[7], create.hash.slice(0, 10));
    const signIn = api.find((e) => e.action === 'session.sign_in' && e.actor === OPERATOR.name);
    assert.equal((await p.locator(`[data-testid="audit-row"][data-id="${signIn.id}"] td`).nth(2).textContent()).trim(), '127.0.0.1');
    await p.mouse.move(0, 0);
    await shot(p, 'audit.png');

    // Action prefix (the hub filters), outcome, then a search within.
    await p.getByTestId('audit-action').selectOption('session.');
    await p.waitForURL((u) => u.searchParams.get('action') === 'session.');
    await p.waitForFunction(() => [...document.querySelectorAll('[data-testid="audit-row"]')].every((r) => r.dataset.action.startsWith('session.')));
    await p.getByTestId('audit-outcome-denied').click();
    await p.waitForURL((u) => u.searchParams.get('outcome') === 'denied');
    await p.waitForFunction(() => [...document.querySelectorAll('[data-testid="audit-row"]')].every((r) => r.dataset.outcome === 'denied'));
    const denied = api.filter((e) => e.action.startsWith('session.') && e.outcome === 'denied');
    await p.getByTestId('audit-count').getByText(`${denied.length} entries`).waitFor();
    assert.ok(denied.some((e) => e.detail === 'locked out after failed sign-ins'), 'the lockout is recorded');
    await p.getByTestId('audit-search').fill('locked out');
    await p.waitForURL((u) => u.searchParams.get('q') === 'locked out');
    // The search filters what is loaded, on the render after the URL changes.
    const lockedOut = denied.filter((e) => e.detail.includes('locked out')).length;
    await p.waitForFunction((n) => document.querySelectorAll('[data-testid="audit-row"]').length === n, lockedOut);
    assert.equal(await rows.first().getAttribute('data-actor'), VIEWER.name);
    // Actor (exact): Enter applies it; an actor's name in a row links to their entries.
    await p.goto(`${hub.url}/audit`);
    await rows.first().waitFor(); // the screen has loaded before it is typed into
    await p.getByTestId('audit-actor').fill(VIEWER.name);
    await p.getByTestId('audit-actor').press('Enter');
    await p.waitForURL((u) => u.searchParams.get('actor') === VIEWER.name);
    await p.waitForFunction((n) => {
      const rs = [...document.querySelectorAll('[data-testid="audit-row"]')];
      return rs.length > 0 && rs.every((r) => r.dataset.actor === n);
    }, VIEWER.name);
    await p.goto(`${hub.url}/audit`);
    await p.locator(`[data-testid="audit-row"][data-actor="${OPERATOR.name}"]`).first().getByTestId('audit-actor-link').click();
    await p.waitForURL((u) => onScreen(u, 'audit') && u.searchParams.get('actor') === OPERATOR.name);
    assert.equal(await p.getByTestId('audit-actor').inputValue(), OPERATOR.name);
    await p.waitForFunction((n) => {
      const rs = [...document.querySelectorAll('[data-testid="audit-row"]')];
      return rs.length > 0 && rs.every((r) => r.dataset.actor === n);
    }, OPERATOR.name);
    await p.getByTestId('audit-action').selectOption('node.');
    await p.getByTestId('audit-empty').getByText('No entry matches').waitFor();

    // Paging with `before`: 5 at a time, continuous.
    await p.goto(`${hub.url}/audit?limit=5`);
    await p.getByTestId('audit-row').first().waitFor();
    assert.equal(await rows.count(), 5);
    await p.getByTestId('audit-older').click();
    await p.waitForFunction(() => document.querySelectorAll('[data-testid="audit-row"]').length === 10);
    const paged = await rows.evaluateAll((rs) => rs.map((r) => Number(r.dataset.id)));
    const now = (await apiAs(admin.ctx, '/api/v1/audit?limit=10')).body.map((e) => e.id);
    assert.deepEqual(paged, now, 'two pages, newest first, no gap');
  });

  step('the admin removes a user, with a confirmation; the last admin stays', async () => {
    const { p } = admin;
    await p.goto(`${hub.url}/settings/users`);
    const victor = p.locator(`[data-testid="user-row"][data-username="${VIEWER.name}"]`);
    await victor.waitFor();
    await victor.getByTestId('user-remove').click();
    await p.getByTestId('confirm').getByText(`Remove ${VIEWER.name}?`).waitFor();
    await p.getByTestId('confirm-cancel').click();
    await p.getByTestId('confirm').waitFor({ state: 'detached' });
    assert.equal(await victor.count(), 1, 'cancel keeps the user');
    await victor.getByTestId('user-remove').click();
    await p.getByTestId('confirm-ok').click();
    await victor.waitFor({ state: 'detached', timeout: 5000 });
    assert.equal(await p.getByTestId('users-notice').textContent(), `Removed ${VIEWER.name}.`);
    assert.equal(await p.getByTestId('users-count').textContent(), '2 users');
    // Change a role and reset a password (the operator's sessions end).
    const olivia = p.locator(`[data-testid="user-row"][data-username="${OPERATOR.name}"]`);
    await olivia.getByTestId('user-role').selectOption('viewer');
    await p.locator(`[data-testid="user-row"][data-username="${OPERATOR.name}"][data-role="viewer"]`).waitFor({ timeout: 5000 });
    assert.equal(await p.getByTestId('users-notice').textContent(), `${OPERATOR.name} is now a viewer.`);
    await olivia.getByTestId('user-reset').click();
    await p.getByTestId('reset-password').fill('short');
    await p.getByTestId('reset-submit').click();
    assert.equal(await p.getByTestId('reset-error').textContent(), 'password: at least 12 characters');
    const reset = pw('reset');
    await p.getByTestId('reset-password').fill(reset);
    await p.getByTestId('reset-submit').click();
    await p.getByTestId('users-notice').getByText(`New password set for ${OPERATOR.name}; their sessions ended.`).waitFor({ timeout: 5000 });
    assert.equal(await p.getByTestId('reset-form').count(), 0);
    const signInWith = (password) => fetch(`${hub.url}/api/v1/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: OPERATOR.name, password }) });
    const r = await signInWith(reset);
    assert.equal(r.status, 200, 'the reset password signs in');
    assert.equal((await r.json()).role, 'viewer', 'with the new role');

    // Removing the last admin: the hub's 409 in the dialog, nothing removed.
    await p.locator('[data-testid="user-row"][data-username="admin"]').getByTestId('user-remove').click();
    await p.getByTestId('confirm').getByText('This is you: you will be signed out.').waitFor();
    await p.getByTestId('confirm-ok').click();
    await p.getByTestId('confirm-error').getByText('the last admin cannot be removed or demoted').waitFor({ timeout: 5000 });
    await p.getByTestId('confirm-cancel').click();
    assert.equal(await p.getByTestId('users-count').textContent(), '2 users');
    assert.equal((await apiAs(admin.ctx, '/api/v1/session')).status, 200, 'still signed in');
  });

  step('phone width: the new screens fit, tables scroll inside their panel', async () => {
    const { ctx, p } = await newPage();
    try {
      await ctx.addCookies((await admin.ctx.storageState()).cookies);
      await p.setViewportSize({ width: 390, height: 844 });
      for (const screen of ['settings/account', 'settings/users', 'settings/tokens', 'audit']) {
        await p.goto(`${hub.url}/${screen}`);
        await p.locator('#main h1').waitFor();
        await p.locator('#main [data-testid$="-table"], #main [data-testid="password-form"]').first().waitFor({ timeout: 5000 });
        const wide = await p.evaluate(() => [document.documentElement.scrollWidth, document.getElementById('main').scrollWidth - document.getElementById('main').clientWidth]);
        const culprit = wide[0] > 390 ? await p.evaluate(() => [...document.querySelectorAll('#main *')].filter((e) => e.getBoundingClientRect().right > 392).slice(0, 4).map((e) => `${e.tagName}.${e.className}:${Math.round(e.getBoundingClientRect().right)}`).join(' ')) : '';
        assert.ok(wide[0] <= 390 && wide[1] <= 0, `${screen}: no sideways scrolling (${wide}) ${culprit}`);
        if (screen === 'audit' || screen === 'settings/users') await shot(p, `${screen.replace('settings/', '')}-phone.png`);
      }
    } finally {
      await ctx.close();
    }
  });

  step('logged no console errors', async (t) => {
    for (const line of allowed) t.diagnostic(`allowed: ${line}`);
    assert.deepEqual(problems, []);
  });
});
