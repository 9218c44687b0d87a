// Proxy routes and the gateway card in a real browser (issue 16): `twinbay up
// --demo 6`, whose first simulated host runs a reverse proxy (crates/cli/src/
// demo.rs: routes to running containers, one to a stopped container, a port,
// one external, one unresolved), and a hand-written protocol-3 agent
// (RouteAgent below, on file-agent.mjs's handshake) whose container the test
// stops and removes. Checks: the Routes screen lists the fleet's routes as the
// API does, broken ones marked; search filters; "broken only" shows only
// those; a container stopping, coming back and vanishing changes its route's
// row live (no reload); the host page's Routes tab; the proxy host's Units
// tab (a unit's file, drop-ins, needs daemon-reload); the overview's gateway
// card says how to configure one (the hub has none) and the routes panel
// names the broken ones; phone width.
//
// Run: TWINBAY_BIN=… node --experimental-websocket --test web/tests/routes.mjs
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM, TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BIN, SHOTS, freePort, shot, signIn, sleep, startHub as startHubProcess, stopProcess, watchConsole, launchBrowser } from './harness.mjs';
import { FileAgent } from './file-agent.mjs';

const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const DEMO_HOSTS = 6;

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser, ctx, page;
let failed = false;
const problems = [];
const allowed = [];
let agent; // the RouteAgent

process.on('exit', () => { try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ } });

function allowedHttpError(msg) {
  const m = /status of (\d{3})/.exec(msg.text());
  if (!m) return false;
  const pathname = new URL(msg.location()?.url || '/', 'http://x').pathname;
  return m[1] === '401' && pathname === '/api/v1/session';
}

/**
 * A host with one container behind a Caddy route, speaking the real agent
 * protocol (file-agent.mjs's handshake); its full sync carries `containers`
 * and `routes`, and each change is a sync_diff.
 */
class RouteAgent extends FileAgent {
  constructor(...args) {
    super(...args);
    this.containers = {};
    this.routes = {};
  }

  static async enrollRoutes({ bin, dataDir, hubUrl, hostname }) {
    const { promisify } = await import('node:util');
    const { execFile } = await import('node:child_process');
    const { stdout } = await promisify(execFile)(bin, ['ctl', '--data-dir', dataDir, 'join-token', 'create']);
    const token = JSON.parse(Buffer.from(stdout.trim().replace(/^tbj1_/, ''), 'base64url').toString()).token;
    const a = new RouteAgent(`${hubUrl.replace(/^http/, 'ws')}/api/v1/agent/connect`, token, hostname);
    a.containers.c0ffee = container('c0ffee', 'photos-immich-1', 'running');
    const r = { provider: 'caddy', instance: 'host', host: 'photos.route-test.example', path: '/', upstream: 'photos-immich-1:2283', tls: true, target: { kind: 'container', id: 'c0ffee', name: 'photos-immich-1' } };
    a.routes[routeKey(r)] = r;
    await a.start();
    return a;
  }

  sync() {
    const host = { hostname: this.hostname, os: 'Debian GNU/Linux 13 (trixie)', kernel: '6.12.0', arch: 'x86_64', agent_version: '0.1.0-routes', boot_time: Math.floor(Date.now() / 1000) - 86400, cpu_cores: 2, labels: {} };
    const sources = { containers: { name: 'containers', available: true }, routes: { name: 'routes', available: true } };
    this.send({ type: 'sync_full', seq: ++this.seq, state: { host, sources, containers: this.containers, routes: this.routes } });
  }

  setContainer(id, state) {
    if (state == null) {
      delete this.containers[id];
      this.send({ type: 'sync_diff', seq: ++this.seq, changes: [{ op: 'remove', collection: 'containers', key: id }] });
      return;
    }
    const c = container(id, this.containers[id]?.name ?? 'photos-immich-1', state);
    this.containers[id] = c;
    this.send({ type: 'sync_diff', seq: ++this.seq, changes: [{ op: 'upsert', collection: 'containers', key: id, value: c }] });
  }
}

function container(id, name, state) {
  return { id, name, image: 'ghcr.io/immich-app/immich-server:release', state, exit_code: state === 'running' ? null : 1, restart_count: 0, ports: [], labels: {} };
}

/** As crates/proto's `Route::key`. */
const routeKey = (r) => `${r.provider}/${r.instance}/${r.host}${r.path}`;

async function apiGet(pathname) {
  const cookie = (await ctx.storageState()).cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const r = await fetch(`${hub.url}${pathname}`, { headers: { cookie } });
  assert.equal(r.status, 200, `${pathname}: ${r.status}`);
  return r.json();
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

const testRow = () => page.locator('[data-testid="route-row"][data-host="photos.route-test.example"]');

describe('proxy routes and the gateway card in the web UI (real browser)', { timeout: 240_000 }, () => {
  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-routes-'));
    const data = path.join(hub.dir, 'data');
    await startHubProcess(hub, (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '2s', '--demo', String(DEMO_HOSTS)], PASSWORD);
    agent = await RouteAgent.enrollRoutes({ bin: BIN, dataDir: data, hubUrl: hub.url, hostname: 'routes-host' });
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme: 'light' });
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
  });

  after(async () => {
    agent?.stop();
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc);
    if (failed) console.error(`routes: kept ${hub.dir} (hub log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
  });

  step('the overview: the gateway card explains --gateway, the routes panel names the broken routes', async () => {
    await signIn(page, hub.url, 'admin', PASSWORD);
    const card = page.getByTestId('gateway-card');
    await card.getByTestId('gateway-hint').waitFor({ timeout: 10_000 });
    assert.match(await card.textContent(), /--gateway upnp/);
    assert.equal(await card.getByTestId('gateway-ip').count(), 0, 'no address shown without a gateway');
    const panel = page.getByTestId('routes-panel');
    await panel.locator('li').first().waitFor({ timeout: 20_000 });
    assert.match(await panel.textContent(), /stopped/);
    await shot(page, 'overview-gateway.png');
  });

  step('the Routes screen lists every route as the API does, broken ones marked', async () => {
    await page.getByTestId('nav-routes').click();
    await page.waitForURL((u) => u.pathname === '/routes');
    await testRow().waitFor({ timeout: 10_000 });
    const api = await apiGet('/api/v1/routes');
    assert.ok(api.length >= 6, `the demo proxy and the test host have routes: ${api.length}`);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="route-row"]').length === n, api.length, { timeout: 10_000 });
    assert.equal(await testRow().getAttribute('data-state'), 'running');
    assert.equal(await testRow().getAttribute('data-broken'), 'false');
    // The demo proxy's route to a stopped container: broken, highlighted.
    const broken = page.locator('[data-testid="route-row"][data-broken="true"]');
    assert.ok((await broken.count()) >= 1, 'a broken route');
    assert.match(await broken.first().getAttribute('class'), /\bis-bad\b/);
    assert.match(await broken.first().textContent(), /broken/);
    // External and unresolved upstreams are neither running nor broken.
    const external = page.locator('[data-testid="route-row"][data-state="external"]').first();
    assert.match(await external.textContent(), /https:\/\/nas\./);
    assert.equal(await external.getAttribute('data-broken'), 'false');
    assert.equal(await page.locator('[data-testid="route-row"][data-state="unknown"]').first().getAttribute('data-broken'), 'false');
    // Each row: public name → proxy → upstream → target → state.
    const text = await testRow().textContent();
    for (const part of ['https://photos.route-test.example', 'routes-host', 'caddy', 'photos-immich-1:2283', 'running']) assert.ok(text.includes(part), `${part} in ${text}`);
    assert.equal(await page.getByTestId('routes-table').getAttribute('aria-rowcount'), String(api.length + 1));
    await shot(page, 'routes.png');
  });

  step('search filters the routes; "broken only" shows only broken ones', async () => {
    await page.getByTestId('route-search').fill('route-test');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="route-row"]').length === 1);
    assert.equal(await testRow().count(), 1);
    await page.getByTestId('route-search').fill('nas.');
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="route-row"]')].every((r) => r.dataset.host.startsWith('nas.')));
    await page.getByTestId('route-search').fill('no-such-route');
    await page.getByTestId('routes-empty').waitFor();
    await page.getByTestId('route-search').fill('');
    await page.getByTestId('route-filter-broken').click();
    await page.waitForURL((u) => u.searchParams.get('show') === 'broken');
    await page.locator('[data-testid="route-row"]').first().waitFor();
    const states = await page.locator('[data-testid="route-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.broken));
    assert.ok(states.length >= 1 && states.every((b) => b === 'true'), `only broken: ${states}`);
    await page.getByTestId('route-filter-all').click();
    await page.waitForURL((u) => !u.searchParams.has('show'));
  });

  step('a container stopping, starting and vanishing changes its route live', async () => {
    await page.evaluate(() => { window.__noReload = true; });
    await page.getByTestId('route-search').fill('route-test');
    await testRow().waitFor();
    agent.setContainer('c0ffee', 'exited');
    await page.locator('[data-testid="route-row"][data-host="photos.route-test.example"][data-state="stopped"]').waitFor({ timeout: 5000 });
    assert.equal(await testRow().getAttribute('data-broken'), 'true');
    assert.match(await testRow().getAttribute('class'), /\bis-bad\b/);
    agent.setContainer('c0ffee', 'running');
    await page.locator('[data-testid="route-row"][data-host="photos.route-test.example"][data-state="running"]').waitFor({ timeout: 5000 });
    agent.setContainer('c0ffee', null);
    await page.locator('[data-testid="route-row"][data-host="photos.route-test.example"][data-state="missing"]').waitFor({ timeout: 5000 });
    assert.ok(await page.evaluate(() => window.__noReload), 'no reload');
    const api = await apiGet('/api/v1/routes?host=route-test');
    assert.equal(api[0].target_state, 'missing');
    assert.equal(api[0].broken, true);
  });

  step("the host page's Routes tab lists that host's routes", async () => {
    await page.goto(`${hub.url}/hosts/${agent.id}?tab=routes`);
    const section = page.getByTestId('section-routes');
    await section.getByTestId('route-row').first().waitFor({ timeout: 10_000 });
    assert.equal(await section.getByTestId('route-row').count(), 1);
    assert.equal(await page.getByTestId('tab-routes').getAttribute('aria-selected'), 'true');
  });

  step("the demo proxy's Units tab shows each unit's file, its drop-ins and \"needs daemon-reload\"", async () => {
    const proxy = (await apiGet('/api/v1/routes')).find((r) => r.node_name !== 'routes-host');
    await page.goto(`${hub.url}/hosts/${proxy.node_id}?tab=units`);
    const stale = page.locator('[data-testid="unit-row"]').filter({ has: page.getByTestId('unit-needs-reload') });
    await stale.first().waitFor({ timeout: 10_000 });
    assert.match(await stale.first().getByTestId('unit-file').textContent(), /^\/usr\/lib\/systemd\/system\/.+ \+ 1 drop-in$/);
    assert.match(await stale.first().textContent(), /needs daemon-reload/);
    const files = await page.getByTestId('unit-file').count();
    assert.ok(files >= 2, `every unit with a file shows it: ${files}`);
    await shot(page, 'host-units-files.png');
  });

  step('phone width: routes as cards, nothing wider than the screen', async () => {
    await page.setViewportSize(PHONE);
    await page.goto(`${hub.url}/routes`);
    await page.locator('[data-testid="route-row"]').first().waitFor({ timeout: 10_000 });
    await sleep(200);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `horizontal overflow ${overflow}px`);
    await shot(page, 'routes-phone.png');
    await page.setViewportSize(DESKTOP);
  });

  step('a gateway that cannot be reached: the card says why and shows no address as current', async () => {
    const gw = { proc: null, port: 0, dir: path.join(hub.dir, 'gw'), url: '', log: '', startedAt: 0 };
    await fs.mkdir(gw.dir, { recursive: true });
    const closed = await freePort();
    try {
      await startHubProcess(gw, (listen) => ['hub', '--listen', listen, '--data-dir', path.join(gw.dir, 'data'), '--gateway', `probe:127.0.0.1:${closed}`, '--gateway-interval', '1s', '--gateway-timeout', '1s'], PASSWORD);
      const p = await ctx.newPage();
      watchConsole(p, allowedHttpError, problems, allowed);
      await signIn(p, gw.url, 'admin', PASSWORD);
      // A hub without hosts yet: the overview says how to add one, and still shows the gateway.
      const card = p.getByTestId('gateway-card');
      await card.getByTestId('gateway-problem').waitFor({ timeout: 10_000 });
      assert.match(await card.getByTestId('gateway-problem').textContent(), /\S/);
      assert.match(await card.getByTestId('gateway-ip').textContent(), /unknown/);
      assert.match(await card.getByTestId('gateway-status').getAttribute('data-upstream'), /^(down|unknown)$/);
      await shot(p, 'overview-gateway-error.png');
      await p.close();
    } finally {
      await stopProcess(gw.proc);
    }
  });

  step('no console errors', async () => {
    assert.deepEqual(problems, []);
  });
});
