// Proxy routes and the gateway card in a real browser (issue 16): `twinbay up
// --demo 6`, whose first simulated host runs a reverse proxy (crates/cli/src/
// demo.rs: routes to running containers, one to a stopped container, a port,
// one external, one unresolved), and a hand-written protocol-3 agent
// (route-agent.mjs, on file-agent.mjs's handshake) whose container the test
// stops and removes. Checks: the Routes screen lists the fleet's routes as the
// API does, broken ones marked; search filters; "broken only" shows only
// those; a container stopping, coming back and vanishing changes its route's
// row live (no reload); the host page's Routes tab; the proxy host's Units
// tab (a unit's file, drop-ins, needs daemon-reload); the overview's gateway
// card says how to configure one (the hub has none) and the routes panel
// names the broken ones; phone width; a gateway that cannot be reached; a
// UniFi console and a FRITZ!Box (local doubles with the devices' recorded
// answers, gateway-doubles.mjs): the round trip and the DSL line on the card.
//
// Run: TWINBAY_BIN=… node --experimental-websocket --test web/tests/routes.mjs
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM, TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BIN, SHOTS, freePort, shot, signIn, sleep, startHub as startHubProcess, stopProcess, watchConsole, launchBrowser, allowHttpErrors, getJson, stepper } from './harness.mjs';
import { CONTAINER_ID, ROUTE_HOST, RouteAgent } from './route-agent.mjs';
import { fritzBox, unifiConsole } from './gateway-doubles.mjs';
import { expectAccessible } from './axe.mjs';

const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const DEMO_HOSTS = 6;

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser, ctx, page;
const problems = [];
const allowed = [];
let agent; // the RouteAgent

/** Chrome logs every refused request; these are the ones the test makes on purpose (the boot's session check while signed out). */
const allowedHttpError = allowHttpErrors('401 /api/v1/session');
const apiGet = (pathname) => getJson(ctx, hub, pathname);
const steps = stepper(it, () => page, () => hub.dir);
const { step } = steps;

process.on('exit', () => { try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ } });

const testRow = (state) => page.locator(`[data-testid="route-row"][data-host="${ROUTE_HOST}"]${state ? `[data-state="${state}"]` : ''}`);

describe('proxy routes and the gateway card in the web UI (real browser)', { timeout: 240_000 }, () => {
  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-routes-'));
    const data = path.join(hub.dir, 'data');
    await startHubProcess(hub, (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '2s', '--demo', String(DEMO_HOSTS)], PASSWORD);
    agent = await RouteAgent.enroll({ bin: BIN, dataDir: data, hubUrl: hub.url, hostname: 'routes-host' });
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme: 'light', bypassCSP: true }); // axe-core is injected as a script
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
  });

  after(async () => {
    agent?.stop();
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc);
    if (steps.failed) console.error(`routes: kept ${hub.dir} (hub log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
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
    for (const part of [`https://${ROUTE_HOST}`, 'routes-host', 'caddy', 'photos-immich-1:2283', 'running']) assert.ok(text.includes(part), `${part} in ${text}`);
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
    agent.setContainer(CONTAINER_ID, 'exited');
    await testRow('stopped').waitFor({ timeout: 5000 });
    assert.equal(await testRow().getAttribute('data-broken'), 'true');
    assert.match(await testRow().getAttribute('class'), /\bis-bad\b/);
    agent.setContainer(CONTAINER_ID, 'running');
    await testRow('running').waitFor({ timeout: 5000 });
    agent.setContainer(CONTAINER_ID, null);
    await testRow('missing').waitFor({ timeout: 5000 });
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
      // Nothing measured: no round trip, no DSL line.
      assert.equal(await card.getByTestId('gateway-latency').count(), 0, 'no round trip shown');
      assert.equal(await card.getByTestId('gateway-dsl').count(), 0, 'no DSL line shown');
      await shot(p, 'overview-gateway-error.png');
      await p.close();
    } finally {
      await stopProcess(gw.proc);
    }
  });

  step('a UniFi console and a FRITZ!Box modem: the round trip and the DSL line on the card, each under its gateway', async () => {
    // Doubles serving the devices' recorded answers (gateway-doubles.mjs); the hub polls them for real.
    const gw = { proc: null, port: 0, dir: path.join(hub.dir, 'gw2'), url: '', log: '', startedAt: 0 };
    await fs.mkdir(gw.dir, { recursive: true });
    const secret = `gw-${randomBytes(6).toString('hex')}`;
    const secretFile = path.join(gw.dir, 'gateway-password');
    await fs.writeFile(secretFile, secret, { mode: 0o600 });
    const unifi = await unifiConsole(secret, gw.dir);
    const fritz = await fritzBox(secret);
    try {
      await startHubProcess(gw, (listen) => ['hub', '--listen', listen, '--data-dir', path.join(gw.dir, 'data'),
        '--gateway', `unifi://127.0.0.1:${unifi.port}?fingerprint=${unifi.fingerprint}`, '--gateway', `fritzbox://admin@127.0.0.1:${fritz.port}`,
        '--gateway-password-file', secretFile, '--gateway-interval', '1s', '--gateway-timeout', '5s'], PASSWORD);
      const p = await ctx.newPage();
      watchConsole(p, allowedHttpError, problems, allowed);
      await signIn(p, gw.url, 'admin', PASSWORD);
      const card = p.getByTestId('gateway-card');
      // The first gateway (the UniFi console): its round trip, no DSL line.
      const unifiPart = card.getByTestId('gateway-status').first();
      await unifiPart.getByTestId('gateway-latency').waitFor({ timeout: 15_000 });
      assert.equal((await unifiPart.getByTestId('gateway-latency').textContent()).trim(), '7 ms');
      assert.equal(await unifiPart.getByTestId('gateway-ip').textContent(), '81.2.69.160');
      assert.equal(await unifiPart.getByTestId('gateway-dsl').count(), 0, 'UniFi reports no DSL line');
      // The second (the FRITZ!Box), below it: its DSL line, no round trip.
      const more = card.getByTestId('gateway-more');
      await more.getByTestId('gateway-dsl').waitFor({ timeout: 15_000 });
      assert.match(await more.locator('h3').textContent(), /FRITZ!Box 7590/);
      assert.equal(await more.getByTestId('gateway-dsl').getAttribute('data-status'), 'Up');
      assert.match(await more.getByTestId('gateway-dsl-sync').textContent(), /↓ 117 Mbit\/s · ↑ 46\.7 Mbit\/s/);
      assert.match(await more.getByTestId('gateway-dsl-attainable').textContent(), /↓ 131 Mbit\/s · ↑ 48\.1 Mbit\/s/);
      assert.equal(await more.getByTestId('gateway-latency').count(), 0, 'the FRITZ!Box measures no round trip');
      assert.equal(await more.getByTestId('gateway-ip').textContent(), '81.2.69.142');
      // What the card shows is what the API says.
      const api = await getJson(p.context(), gw, '/api/v1/gateway');
      assert.equal(api.latency_ms, 7);
      assert.equal(api.gateways[1].dsl.down_sync_bps, 116_798_000);
      await expectAccessible(p, 'the overview with two gateways');
      await shot(p, 'overview-gateway-dsl.png');
      await p.close();
    } finally {
      await stopProcess(gw.proc);
      unifi.close();
      fritz.close();
    }
  });

  step('no console errors', async () => {
    assert.deepEqual(problems, []);
  });
});
