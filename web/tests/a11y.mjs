// Accessibility gate: axe-core's WCAG 2.1 A and AA rules on every screen and
// tab of the UI, in the light and the dark theme, at desktop (1280x800) and
// phone (390x844) width, with the states that matter: lists with rows, an
// empty list, a failed sign-in, a dialog open, a new token's secret, the 3D
// world's screen (its list and admin panel; the canvas is an image). Any
// violation fails. Also keyboard focus around the dialogs, and what a screen
// reader gets from the virtualised host list (Chromium's accessibility tree:
// the real row count and each rendered row's name).
//
// One `twinbay up --demo 40` (the local agent and 40 simulated hosts) and one
// browser; a fresh context per theme × width.
//
// Run: bash scripts/browser-test.sh (or node --experimental-websocket --test web/tests/a11y.mjs)
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM (default /usr/bin/chromium).
// On a failure the screenshot and the hub's log stay in its temp dir (printed).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BIN, sleep, startHub as startHubProcess, stopProcess, watchConsole, launchBrowser } from './harness.mjs';
import { A11yAudit, AXE_VERSION } from './axe.mjs';
import { FileAgent } from './file-agent.mjs';

const DEMO_HOSTS = 40;
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const THEMES = ['light', 'dark'];
const HOST_TABS = ['overview', 'containers', 'units', 'routes', 'files', 'ports', 'processes', 'events', 'actions', 'commands', 'agent'];
const HOSTNAME = os.hostname();

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser;
let diffEndpoint = true; // GET /nodes/{id}/files/diff, added in parallel: probed in before()
let files; // a host watching files (file-agent.mjs): rows, a history, a diff, a change
let failed = false;
const problems = [];
const allowed = [];
const summary = []; // per theme × width: screens checked, violations

// Chrome logs every non-2xx response as a console error: the boot's session
// check while signed out and the deliberate wrong password answer 401.
function allowedHttpError(msg) {
  const m = /status of (\d{3})/.exec(msg.text());
  if (!m) return false;
  const pathname = new URL(msg.location()?.url || '/', 'http://x').pathname;
  return (m[1] === '401' && pathname === '/api/v1/session') || (!diffEndpoint && m[1] === '404' && pathname.endsWith('/files/diff')) ||
    // The rollouts API, added in parallel: the Updates screen says when a hub has none.
    (m[1] === '404' && pathname === '/api/v1/rollouts');
}

process.on('exit', () => { try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ } });

/** Waits until the screen has nothing left loading, then a moment for the layout. */
async function settle(p) {
  await p.waitForFunction(() => {
    const main = document.querySelector('#main') || document.body;
    return !/\bloading/i.test(main.innerText) && !document.querySelector('.charts-loading');
  }, null, { timeout: 10_000, polling: 100 });
  await sleep(150);
}

async function go(p, url) {
  await p.goto(`${hub.url}${url}`);
  await p.locator('#shell').waitFor({ timeout: 10_000 });
}

describe('twinbay web UI accessibility (axe-core, real browser)', { timeout: 420_000 }, () => {
  const t0 = performance.now();
  let localId = '';

  before(async () => {
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-a11y-'));
    const data = path.join(hub.dir, 'data');
    await startHubProcess(hub, (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '2s', '--demo', String(DEMO_HOSTS)], PASSWORD);
    browser = await launchBrowser();
    // A host with watched files: shipped, secret (hashed only), missing, unreadable; one edited (a change with a redaction marker).
    const COMPOSE = 'services:\n  web:\n    image: nginx:1.25\n';
    files = await FileAgent.enroll({ bin: BIN, dataDir: data, hubUrl: hub.url, hostname: 'files-host', files: { '/srv/app/compose.yaml': COMPOSE } });
    files.setFile('/etc/app/secret.env', 'TOKEN=abc\n', { content: 'secret' });
    files.setFile('/etc/nginx/nginx.conf', null);
    files.setFile('/etc/shadow', null, { state: 'unreadable' });
    files.setFile('/srv/app/compose.yaml', `${COMPOSE.replace('1.25', '1.27')}    environment:\n      DB_PASSWORD: «redacted:DB_PASSWORD»\n`, { redacted: 1 });
    const session = await fetch(`${hub.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json', origin: hub.url }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
    const cookie = session.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const probe = await fetch(`${hub.url}/api/v1/nodes/${files.id}/files/diff?path=%2Fsrv%2Fapp%2Fcompose.yaml`, { headers: { cookie } });
    diffEndpoint = !(probe.status === 404 && !(await probe.text()).includes('"error"')); // the endpoint's own 404s say why
    if (!diffEndpoint) console.error('a11y: this hub has no /files/diff endpoint yet: the diff screens are not checked');
  });

  after(async () => {
    files?.stop();
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc);
    if (failed) console.error(`a11y: kept ${hub.dir} (hub log, failure png)`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
    for (const line of summary) console.error(`a11y: ${line}`);
    console.error(`a11y: axe-core ${AXE_VERSION}, total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  for (const theme of THEMES) {
    for (const [size, viewport] of Object.entries(SIZES)) {
      const tag = `${theme} · ${size}`;
      it(`every screen passes WCAG 2.1 A/AA: ${tag}`, async () => {
        const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1, colorScheme: theme, bypassCSP: true });
        const p = await ctx.newPage();
        watchConsole(p, allowedHttpError, problems, allowed);
        const audit = new A11yAudit();
        const check = (label) => audit.check(p, `${label} · ${tag}`);
        try {
          // Signed out: the form, then a failed sign-in.
          await p.goto(`${hub.url}/`);
          await p.getByTestId('signin-form').waitFor();
          assert.equal(await p.evaluate(() => document.documentElement.dataset.theme), theme);
          await check('sign-in');
          await p.getByTestId('signin-username').fill('nobody');
          await p.getByTestId('signin-password').fill('wrong-password');
          await p.getByTestId('signin-submit').click();
          await p.getByTestId('signin-error').waitFor();
          await check('sign-in, failed');
          await p.getByTestId('signin-username').fill('admin');
          await p.getByTestId('signin-password').fill(PASSWORD);
          await p.getByTestId('signin-submit').click();
          await p.locator('#shell').waitFor({ timeout: 10_000 });

          // The fleet screens, with rows (the demo fleet has come in) and empty.
          await p.waitForFunction((n) => /^(\d+) host/.exec(document.querySelector('[data-testid="counts"]')?.textContent || '')?.[1] >= n, DEMO_HOSTS + 1, { timeout: 30_000 });
          await settle(p);
          await p.getByTestId('recent-events').locator('[data-testid="event-row"]').first().waitFor();
          await check('overview');
          for (const [screen, row] of [['hosts', 'host-row'], ['containers', 'container-row'], ['units', 'unit-row'], ['routes', 'route-row'], ['events', 'event-row']]) {
            await p.getByTestId(`nav-${screen}`).click();
            await p.waitForURL((u) => u.pathname === `/${screen}`);
            await p.getByTestId(row).first().waitFor({ timeout: 10_000 });
            await settle(p);
            await check(screen);
          }
          // The network map, then one host's details with its impact.
          await go(p, '/network');
          await p.locator('[data-testid="net-node"][data-kind="host"]').first().waitFor({ timeout: 15_000 });
          await settle(p);
          await check('network');
          await go(p, `/network?node=${encodeURIComponent('internet')}`);
          await p.getByTestId('network-details').waitFor({ timeout: 15_000 });
          await p.getByTestId('net-impact').click();
          await p.getByTestId('net-impact-result').waitFor();
          await settle(p);
          await check('network, details and impact');
          await go(p, '/events');
          await p.getByTestId('event-row').first().waitFor({ timeout: 10_000 });
          await p.getByTestId('event-search').fill('no-such-thing');
          await p.getByTestId('empty').waitFor();
          await check('events, nothing matches');
          await go(p, '/hosts?q=no-such-host');
          await p.getByTestId('empty').waitFor();
          await check('hosts, nothing matches');
          // Proxy routes (the demo's proxy hosts): broken only, nothing matches, a proxy host's Routes tab.
          await go(p, '/routes?show=broken');
          await p.getByTestId('route-row').first().waitFor({ timeout: 10_000 });
          await settle(p);
          await check('routes, broken only');
          const proxyHost = await p.getByTestId('route-row').first().locator('a[href*="tab=routes"]').first().getAttribute('href');
          await go(p, '/routes?q=no-such-route');
          await p.getByTestId('routes-empty').waitFor();
          await check('routes, nothing matches');
          await go(p, proxyHost);
          await p.getByTestId('section-routes').getByTestId('route-row').first().waitFor({ timeout: 10_000 });
          await settle(p);
          await check('host, routes of a proxy');

          // Backups: none yet (this hub's agents have no backup root), the explanation.
          await go(p, '/backups');
          await p.getByTestId('backups-empty').waitFor({ timeout: 15_000 });
          await settle(p);
          await check('backups');

          // Alerts: the active list, the rules (a new hub's defaults) and the channels form.
          await go(p, '/alerts');
          await p.getByTestId('alerts-tab-active').waitFor();
          await settle(p);
          await check('alerts');
          await go(p, '/alerts?tab=rules');
          await p.getByTestId('rule-row').first().waitFor({ timeout: 10_000 });
          await settle(p);
          await check('alerts, rules');
          await go(p, '/alerts?tab=channels');
          await p.getByTestId('channel-form').waitFor();
          await check('alerts, channels');

          // Updates: the fleet's versions with one version's hosts listed, the (empty) releases.
          await go(p, '/updates');
          await p.getByTestId('version-open').first().click();
          await p.getByTestId('version-hosts').waitFor({ timeout: 10_000 });
          await p.getByTestId('releases-empty').waitFor({ timeout: 10_000 });
          await settle(p);
          await check('updates');

          // The local host, every tab.
          await go(p, '/hosts');
          const local = p.getByTestId('host-row').filter({ has: p.getByRole('link', { name: HOSTNAME, exact: true }) });
          await p.getByTestId('host-search').fill(HOSTNAME);
          await local.first().waitFor();
          localId ||= await local.first().getAttribute('data-node-id');
          await go(p, `/hosts/${localId}`);
          for (const tab of HOST_TABS) {
            await p.getByTestId(`tab-${tab}`).click();
            await p.waitForURL((u) => (u.searchParams.get('tab') || 'overview') === tab);
            await settle(p);
            await check(`host, ${tab}`);
          }

          // Watched files: the fleet's changes (rows, none this risky), a host's files, one file's history and diff (both layouts).
          for (const [url, label, ready] of [['/changes', 'changes', 'change-row'], ['/changes?risk=critical', 'changes, none this risky', 'changes-empty'], [`/hosts/${files.id}?tab=files`, 'host, files', 'file-row'], [`/hosts/${files.id}?tab=files&path=%2Fsrv%2Fapp%2Fcompose.yaml`, 'host, file history and diff', diffEndpoint ? 'diff' : 'version-row'], ...(diffEndpoint ? [[`/hosts/${files.id}?tab=files&path=%2Fsrv%2Fapp%2Fcompose.yaml&view=split`, 'host, file diff side by side', 'diff']] : [])]) {
            await go(p, url);
            await p.getByTestId(ready).first().waitFor({ timeout: 15_000 });
            await settle(p);
            await check(label);
          }

          // The 3D world (no layout yet: the hint, the admin panel, every host on the shelf).
          await go(p, '/world');
          await p.getByTestId('world-hint').waitFor({ timeout: 20_000 });
          await p.getByTestId('world-list').waitFor();
          await settle(p);
          await check('world');

          // Admin screens, a dialog open, a new token's secret.
          for (const [url, label, ready] of [['/audit', 'audit', 'audit-table'], ['/settings/account', 'settings, account', 'password-form'], ['/settings/users', 'settings, users', 'users-table'], ['/settings/tokens', 'settings, tokens', 'new-token-form']]) {
            await go(p, url);
            await p.getByTestId(ready).waitFor({ timeout: 10_000 });
            await settle(p);
            await check(label);
          }
          await p.getByTestId('new-token-name').fill(`a11y-${theme}-${size}`);
          await p.getByTestId('new-token-submit').click();
          await p.getByTestId('token-secret').waitFor();
          await check('settings, tokens, new secret');
          await p.getByTestId('token-secret-done').click();
          const revoke = p.locator(`[data-testid="token-row"][data-name="a11y-${theme}-${size}"]`).getByTestId('token-revoke');
          await revoke.click();
          await p.getByTestId('confirm').waitFor();
          await check('settings, tokens, confirm dialog');
          await p.keyboard.press('Escape');
          await p.getByTestId('confirm').waitFor({ state: 'detached' });

          await go(p, '/settings/account');
          const opener = p.getByTestId('signout-everywhere');
          await opener.focus();
          await p.keyboard.press('Enter');
          await p.getByTestId('confirm').waitFor();
          await check('settings, account, confirm dialog');
          // Focus stays in the dialog (Tab cycles within it) and returns to the opener.
          for (let i = 0; i < 4; i++) {
            await p.keyboard.press('Tab');
            assert.ok(await p.evaluate(() => !!document.activeElement?.closest('dialog[open]')), 'focus stays inside the open dialog');
          }
          await p.keyboard.press('Escape');
          await p.getByTestId('confirm').waitFor({ state: 'detached' });
          await p.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'signout-everywhere', null, { timeout: 2000 })
            .catch(() => assert.fail('focus returns to the button that opened the dialog'));
        } catch (err) {
          failed = true;
          await p.screenshot({ path: path.join(hub.dir, `failure-${theme}-${size}.png`) }).catch(() => {});
          throw err;
        } finally {
          const counts = audit.counts();
          const dirty = counts.filter((c) => c.rules);
          summary.push(`${tag}: ${counts.length} screens, ${dirty.length} with violations` + (dirty.length ? ` (${dirty.map((c) => `${c.label.replace(` · ${tag}`, '')}: ${c.ids.join(' ')}, ${c.nodes} nodes`).join('; ')})` : ''));
          await ctx.close();
        }
        audit.assertClean();
      });
    }
  }

  it('a screen reader gets the virtualised host list: its real length and each row by name', async () => {
    const ctx = await browser.newContext({ viewport: SIZES.desktop, deviceScaleFactor: 1 });
    const p = await ctx.newPage();
    watchConsole(p, allowedHttpError, problems, allowed);
    try {
      await p.goto(`${hub.url}/signin`);
      await p.getByTestId('signin-username').fill('admin');
      await p.getByTestId('signin-password').fill(PASSWORD);
      await p.getByTestId('signin-submit').click();
      await p.locator('#shell').waitFor({ timeout: 10_000 });
      await go(p, '/hosts');
      await p.getByTestId('host-row').first().waitFor();
      const total = Number(await p.getByTestId('hosts-list').getAttribute('data-count'));
      assert.ok(total >= DEMO_HOSTS + 1, `the demo fleet is listed (${total})`);
      const rendered = await p.getByTestId('host-row').count();
      assert.ok(rendered < total, `virtualised: ${rendered} of ${total} rows in the DOM`);
      const names = await p.locator('[data-testid="host-row"] [data-testid="hostname"] a').allTextContents();

      // Chromium's own accessibility tree, as a screen reader reads it.
      const cdp = await ctx.newCDPSession(p);
      const { nodes } = await cdp.send('Accessibility.getFullAXTree');
      const byId = new Map(nodes.map((n) => [n.nodeId, n]));
      const table = nodes.find((n) => ['table', 'grid'].includes(n.role?.value) && n.name?.value === 'Hosts');
      assert.ok(table, 'the hosts list is a table named "Hosts"');
      const rows = [];
      const walk = (n) => {
        if (n.role?.value === 'row') rows.push(n);
        for (const c of n.childIds || []) if (byId.has(c)) walk(byId.get(c));
      };
      walk(table);
      // Its size: aria-rowcount (the header row and every host), which
      // Chromium passes on as the table's row count.
      const { node } = await cdp.send('DOM.describeNode', { backendNodeId: table.backendDOMNodeId });
      const attrs = Object.fromEntries((node.attributes || []).reduce((a, v, i, all) => (i % 2 ? a : [...a, [v, all[i + 1]]]), []));
      assert.equal(Number(attrs['aria-rowcount']), total + 1, 'aria-rowcount is every host plus the header row');
      const dataRows = rows.slice(1);
      assert.equal(dataRows.length, rendered, 'every rendered row is a row in the tree');
      for (const [i, r] of dataRows.entries()) {
        assert.ok(r.name?.value?.includes(names[i]), `row ${i + 1} is named after its host (${names[i]}): "${r.name?.value}"`);
      }
      const { node: firstRow } = await cdp.send('DOM.describeNode', { backendNodeId: dataRows[0].backendDOMNodeId });
      assert.equal(firstRow.attributes[firstRow.attributes.indexOf('aria-rowindex') + 1], '2', 'the first host is row 2 (after the header)');
    } finally {
      await ctx.close();
    }
  });

  it('logged no console errors', (t) => {
    for (const line of allowed) t.diagnostic(`allowed: ${line}`);
    assert.deepEqual(problems, []);
  });
});
