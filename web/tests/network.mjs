// The network map (/network, issue 17) in a real browser: `twinbay up --demo N`
// (the local agent and N simulated hosts, 500 by default: ~10,000 containers)
// and the embedded UI in Debian's Chromium through playwright-core. Checks: the
// screen is in the navigation and draws the demo hosts; the internet says it
// has no gateway; unknown link speeds say so; search focuses a host; clicking a
// host opens its details with a link to its page; impact highlights what
// depends on it; zooming in draws the folded containers; a dragged node stays
// where it was put across a reload; the topology arrives live as diffs on
// the stream (never read again); a container stopping on a host with a route
// to it (route-agent.mjs) turns its node and the route red within a second,
// with no reload (the delay printed), and impact on it highlights the
// route and names the public name; phone
// width with a tap and a pinch; no console errors. Prints frame times while
// panning the whole fleet and while panning zoomed in. Routes are optional
// (the demo fleet may have none).
//
// Run: bash scripts/browser-test.sh (or node --experimental-websocket --test web/tests/network.mjs)
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM (default /usr/bin/chromium),
//      TWINBAY_SCREENSHOTS (default docs/screenshots), TWINBAY_NETWORK_HOSTS (default 100; 500 for the frame-time numbers).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BIN, SHOTS, shot, sleep, startHub as startHubProcess, stopProcess, watchConsole, launchBrowser, allowHttpErrors, getJson, stepper } from './harness.mjs';
import { CONTAINER_ID, ROUTE_HOST, RouteAgent } from './route-agent.mjs';

const DEMO_HOSTS = Number(process.env.TWINBAY_NETWORK_HOSTS || 100);
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const HOSTNAME = os.hostname();

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser, ctx, page;
let routeAgent; // a host with a container behind a route (route-agent.mjs)
const problems = [];
const allowed = [];
const report = [];

/** Chrome logs every refused request; these are the ones the test makes on purpose (the boot's session check while signed out). */
const allowedHttpError = allowHttpErrors('401 /api/v1/session');
const apiGet = (pathname) => getJson(ctx, hub, pathname);
const steps = stepper(it, () => page, () => hub.dir);
const { step } = steps;

process.on('exit', () => { try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ } });

const node = (p, id) => p.locator(`[data-testid="net-node"][data-id="${id}"]`);
const scale = async (p) => Number(await p.getByTestId('network-map').getAttribute('data-scale'));

/** Whether an element's box is inside the map's. */
async function onMap(p, loc) {
  const m = await p.getByTestId('network-map').boundingBox();
  const b = await loc.boundingBox();
  return !!b && b.x >= m.x - 1 && b.y >= m.y - 1 && b.x + b.width <= m.x + m.width + 1 && b.y + b.height <= m.y + m.height + 1;
}

/** Frame times over `ms` of panning the map with a (synthetic) pointer drag, a step each frame. */
function measurePan(p, ms, dx, dy) {
  return p.evaluate(async ([ms, dx, dy]) => {
    const svg = document.querySelector('[data-testid="network-map"]');
    const r = svg.getBoundingClientRect();
    // Start on the background (not a node).
    let x = r.left + 4, y = r.top + 4;
    for (let i = 0; i < 50 && document.elementFromPoint(x, y) !== svg; i++) y += 13;
    const fire = (type) => svg.dispatchEvent(new PointerEvent(type, { pointerId: 77, pointerType: 'mouse', isPrimary: true, bubbles: true, clientX: x, clientY: y, button: 0, buttons: 1 }));
    fire('pointerdown');
    const deltas = [];
    let long = 0;
    const obs = new PerformanceObserver((l) => { long += l.getEntries().length; });
    try { obs.observe({ type: 'longtask', buffered: false }); } catch { /* not supported */ }
    const applied0 = window.__twinbay.applied;
    await new Promise((resolve) => {
      let last = performance.now();
      const end = last + ms;
      let i = 0;
      const loop = (now) => {
        deltas.push(now - last);
        last = now;
        // Back and forth, so the view stays around the fleet.
        const dir = Math.floor(i++ / 60) % 2 ? -1 : 1;
        x += dx * dir;
        y += dy * dir;
        fire('pointermove');
        if (now < end) requestAnimationFrame(loop);
        else resolve();
      };
      requestAnimationFrame(loop);
    });
    fire('pointerup');
    obs.disconnect();
    deltas.sort((a, b) => a - b);
    const q = (f) => deltas[Math.min(deltas.length - 1, Math.floor(f * deltas.length))];
    return { frames: deltas.length, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: deltas[deltas.length - 1], long, messages: window.__twinbay.applied - applied0, rendered: Number(svg.dataset.rendered), chips: Number(svg.dataset.chips) };
  }, [ms, dx, dy]);
}

const fmt = (v) => `${v.toFixed(1)} ms`;
const frameLine = (what, f) => `${what}: ${f.frames} frames, frame time p50 ${fmt(f.p50)}, p95 ${fmt(f.p95)}, p99 ${fmt(f.p99)}, max ${fmt(f.max)}, ${f.long} long tasks, ` +
  `${f.messages} stream messages applied meanwhile; ${f.rendered} nodes and ${f.chips} chips drawn`;

describe('twinbay network map (real browser)', { timeout: 600_000 }, () => {
  const t0 = performance.now();
  let hosts = []; // topology host nodes
  let localHost = '';
  let demoHost = null; // a connected simulated host with containers

  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-network-'));
    const data = path.join(hub.dir, 'data');
    // `up --demo` writes data/agent/demo-join, at times before the local agent made that dir.
    await fs.mkdir(path.join(data, 'agent'), { recursive: true });
    await startHubProcess(hub, (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '2s', '--demo', String(DEMO_HOSTS)], PASSWORD);
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, colorScheme: 'light' });
    ctx.setDefaultTimeout(60_000);
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
  });

  after(async () => {
    routeAgent?.stop();
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc);
    if (steps.failed) console.error(`network: kept ${hub.dir} (hub log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
    for (const line of report) console.error(`network: ${line}`);
    console.error(`network: total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  step('the demo fleet comes in; the topology has every host', async (t) => {
    // The demo fleet enrolls all at once: wait for it through the API before the browser comes.
    const t0 = performance.now();
    let cookie = '';
    let count = 0;
    while (performance.now() - t0 < 180_000) {
      try {
        if (!cookie) {
          const r = await fetch(`${hub.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json', origin: hub.url }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
          if (r.ok) cookie = r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
        }
        if (cookie) count = (await (await fetch(`${hub.url}/api/v1/nodes`, { headers: { cookie } })).json()).filter((n) => n.connected).length;
      } catch { /* busy enrolling */ }
      if (count >= DEMO_HOSTS + 1) break;
      await sleep(1000);
    }
    assert.equal(count, DEMO_HOSTS + 1, 'every demo host connected');
    report.push(`${DEMO_HOSTS} demo hosts connected ${((performance.now() - t0) / 1000).toFixed(1)} s after the hub answered`);
    await sleep(2000);
    // The harness's sign-in, with the patience a hub busy with 500 simulated agents needs.
    await page.goto(`${hub.url}/`);
    await page.getByTestId('signin-username').fill('admin');
    await page.getByTestId('signin-password').fill(PASSWORD);
    await page.getByTestId('signin-submit').click();
    await page.locator('#shell').waitFor({ timeout: 60_000 });
    await page.waitForFunction((n) => Number(/^(\d+) host/.exec(document.querySelector('[data-testid="counts"]')?.textContent || '')?.[1]) >= n, DEMO_HOSTS + 1, { timeout: 60_000, polling: 500 });
    const t1 = performance.now();
    const g = await apiGet('/api/v1/topology');
    hosts = g.nodes.filter((n) => n.kind === 'host');
    assert.equal(hosts.length, DEMO_HOSTS + 1, 'the demo hosts and this machine');
    const kinds = {};
    for (const n of g.nodes) kinds[n.kind] = (kinds[n.kind] || 0) + 1;
    report.push(`topology of ${hosts.length} hosts: ${g.nodes.length} nodes (${Object.entries(kinds).map(([k, v]) => `${v} ${k}`).join(', ')}), ${g.edges.length} edges, read in ${(performance.now() - t1).toFixed(0)} ms`);
    t.diagnostic(report.at(-1));
    localHost = hosts.find((h) => h.label === HOSTNAME)?.id;
    assert.ok(localHost, 'this machine is a host');
    const perHost = new Map();
    for (const n of g.nodes) if (n.kind === 'container' && n.node_id) perHost.set(n.node_id, (perHost.get(n.node_id) || 0) + 1);
    demoHost = hosts.find((h) => h.id !== localHost && h.health === 'ok' && perHost.get(h.node_id) >= 5);
    assert.ok(demoHost, 'a connected demo host with containers');
  });

  step('the Network screen is in the navigation and draws the hosts; plain words for what is unknown', async (t) => {
    const t1 = performance.now();
    await page.getByTestId('nav-network').click();
    await page.waitForURL((u) => u.pathname === '/network');
    await page.locator('[data-testid="net-node"][data-kind="host"]').first().waitFor({ timeout: 30_000 });
    report.push(`map of ${hosts.length} hosts drawn ${(performance.now() - t1).toFixed(0)} ms after the click (chunk loaded, topology fetched, layout ${await page.getByTestId('network-map').getAttribute('data-layout-ms')} ms)`);
    t.diagnostic(report.at(-1));
    assert.match(await page.getByTestId('network-count').textContent(), new RegExp(`^${hosts.length} hosts · `));
    const drawn = await page.locator('[data-testid="net-node"][data-kind="host"]').count();
    assert.ok(drawn > 0, `hosts are drawn (${drawn} near the view)`);
    assert.equal(await page.locator('[data-testid="net-node"][data-kind="container"]').count(), 0, 'containers are folded into their hosts');
    // Without --gateway the internet says so.
    const g = await apiGet('/api/v1/topology');
    if (!g.nodes.some((n) => n.kind === 'gateway')) {
      await node(page, 'internet').waitFor();
      assert.match(await node(page, 'internet').textContent(), /no gateway configured/);
    }
    assert.match(await page.getByTestId('network-legend').textContent(), /speed unknown/);
    // An unknown speed is drawn dashed and never as 0 %.
    const unknown = g.edges.filter((e) => e.kind === 'uplink' && e.utilisation == null).length;
    t.diagnostic(`${unknown} uplinks of unknown speed`);
    assert.equal(await page.locator('[data-testid="net-edge"][data-util="unknown"]:not(.e-unknown)[data-kind="uplink"]').count(), 0);
    await page.getByTestId('net-fit').click();
    await sleep(300);
    assert.ok((await scale(page)) < 0.35, 'fit shows the whole fleet');
  });

  step('search focuses a host and opens its details; the link leads to its page', async () => {
    await page.getByTestId('network-search').fill(demoHost.label);
    await page.getByTestId('network-search').press('Enter');
    await page.waitForURL((u) => u.searchParams.get('node') === demoHost.id);
    const details = page.getByTestId('network-details');
    await details.waitFor();
    assert.equal(await details.getAttribute('data-id'), demoHost.id);
    const n = node(page, demoHost.id);
    await n.waitFor();
    assert.ok(await onMap(page, n), 'the found host is in view');
    assert.match(await n.getAttribute('class'), /\bmatch\b/);
    assert.equal(await page.getByTestId('net-detail-link').getAttribute('href'), `/hosts/${encodeURIComponent(demoHost.node_id)}`);
    await page.getByTestId('network-search').fill('');
    await page.getByTestId('net-detail-link').click();
    await page.waitForURL((u) => u.pathname === `/hosts/${demoHost.node_id}`);
    await page.goBack();
    await page.waitForURL((u) => u.pathname === '/network');
    await page.getByTestId('network-details').waitFor();
  });

  step('clicking a host opens its details; impact highlights what depends on it', async () => {
    await page.getByTestId('net-close').click();
    await page.getByTestId('network-details').waitFor({ state: 'detached' });
    const n = node(page, demoHost.id);
    await n.waitFor();
    await n.click();
    await page.getByTestId('network-details').waitFor();
    assert.equal(await page.getByTestId('network-details').getAttribute('data-id'), demoHost.id);
    await page.getByTestId('net-impact').click();
    const result = page.getByTestId('net-impact-result');
    await result.waitFor();
    const count = Number(await result.getAttribute('data-count'));
    const expected = await apiGet(`/api/v1/topology/impact?id=${encodeURIComponent(demoHost.id)}`);
    assert.ok(count > 0, `something depends on the host (${count})`);
    assert.ok(Math.abs(count - expected.elements.length) <= 3, `the API's answer (${count} vs ${expected.elements.length})`);
    // Its containers unfold, highlighted.
    await page.locator('[data-testid="net-node"][data-impact="true"]').first().waitFor({ timeout: 5000 });
    const hit = await page.locator('[data-testid="net-node"][data-impact="true"]').count();
    assert.ok(hit > 0, `${hit} highlighted`);
    assert.match(await result.textContent(), /No public name depends on it|stop working/);
    await sleep(300);
    await shot(page, 'network-desktop.png');
    await page.getByTestId('net-expand').click(); // collapse again
    await page.locator('[data-testid="net-node"][data-kind="container"]').first().waitFor({ state: 'detached' });
  });

  step('zooming in past the threshold draws the folded containers as chips', async () => {
    const n = node(page, localHost);
    await page.getByTestId('network-search').fill(HOSTNAME);
    await page.getByTestId('network-search').press('Enter');
    await n.waitFor();
    const box = await page.getByTestId('network-map').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    for (let i = 0; i < 12 && (await scale(page)) < 1.3; i++) {
      await page.mouse.wheel(0, -200);
      await sleep(80);
    }
    assert.ok((await scale(page)) >= 1.2, `zoomed in (${await scale(page)})`);
    await page.locator('[data-testid="net-chip"]').first().waitFor({ timeout: 5000 });
    await page.getByTestId('network-search').fill('');
  });

  step('a dragged node keeps its place across a reload', async () => {
    await page.getByTestId('net-fit').click();
    await page.getByTestId('network-search').fill(demoHost.label);
    await page.getByTestId('network-search').press('Enter');
    const n = node(page, demoHost.id);
    await n.waitFor();
    await page.getByTestId('network-search').fill('');
    const before = await n.getAttribute('transform');
    const b = await n.boundingBox();
    await page.mouse.move(b.x + 30, b.y + b.height / 2);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++) await page.mouse.move(b.x + 30 - i * 12, b.y + b.height / 2 + i * 6);
    await page.mouse.up();
    await page.getByTestId('net-reset').waitFor(); // stored and drawn from the stored place
    const moved = await n.getAttribute('transform');
    assert.notEqual(moved, before, 'the node moved');
    const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('twinbay.network.positions') || '{}'));
    assert.ok(stored[demoHost.id], 'its position is stored');
    await page.reload();
    await node(page, demoHost.id).waitFor({ timeout: 30_000 });
    assert.equal(await node(page, demoHost.id).getAttribute('transform'), moved, 'the same place after the reload');
    await page.getByTestId('net-reset').waitFor();
  });

  step('live: topology diffs arrive on the stream and are drawn, with no read of the graph and no reload', async () => {
    await page.evaluate(() => { window.__noReload = true; });
    let reads = 0;
    const onReq = (r) => { if (new URL(r.url()).pathname === '/api/v1/topology') reads++; };
    page.on('request', onReq);
    const before = await page.evaluate(() => ({ v: window.__twinbay.topology.version, c: window.__twinbay.topology.changes }));
    const t1 = performance.now();
    // The demo fleet churns: the hub sends what changed within a second or so.
    await page.waitForFunction((v) => window.__twinbay.topology.version > v, before.v, { timeout: 30_000, polling: 100 });
    const took = performance.now() - t1;
    // The map takes the new graph (it holds the same element count it says it draws).
    await page.waitForFunction(() => {
      const t = window.__twinbay.topology.graph();
      const m = /(\d+) elements/.exec(document.body.textContent || '');
      return m && Number(m[1]) === t.nodes.length;
    }, null, { timeout: 10_000, polling: 200 });
    page.off('request', onReq);
    assert.equal(reads, 0, 'the graph is never read again while the map is open');
    report.push(`live: a topology diff arrived ${took.toFixed(0)} ms into the wait and was drawn, 0 reads of the graph`);
    assert.equal(await page.evaluate(() => window.__noReload), true);
  });

  step('a container stops: its node and the route to it turn red within a second, no reload; impact names the route', async (t) => {
    // A host whose container is behind a Caddy route, joining while the map is open.
    routeAgent = await RouteAgent.enroll({ bin: BIN, dataDir: path.join(hub.dir, 'data'), hubUrl: hub.url, hostname: 'routes-net-host' });
    const hostId = `host:${routeAgent.id}`;
    const ctrId = `container:${routeAgent.id}:${CONTAINER_ID}`;
    // Searched for the moment the stream has it: the map's own copy of the graph may be
    // a debounce behind, and Enter must still find it (at 500 hosts it did not, on 2026-12-03).
    await page.waitForFunction((h) => window.__twinbay.topology.graph().nodes.some((n) => n.id === h), hostId, { timeout: 30_000, polling: 'raf' });
    await page.getByTestId('network-search').fill('routes-net-host');
    await page.getByTestId('network-search').press('Enter');
    await page.waitForURL((u) => u.searchParams.get('node') === hostId, { timeout: 10_000 });
    const routeId = await page.waitForFunction(([c, name]) => {
      const g = window.__twinbay.topology.graph();
      const route = g.nodes.find((n) => n.kind === 'route' && n.label.includes(name));
      return g.nodes.find((n) => n.id === c)?.health === 'ok' && route?.health === 'ok' ? route.id : null;
    }, [ctrId, ROUTE_HOST], { timeout: 30_000, polling: 200 }).then((h) => h.jsonValue());
    // Unfold the host, so its container is a node of its own.
    await page.getByTestId('network-search').fill('');
    await page.getByTestId('net-expand').click();
    await node(page, ctrId).waitFor({ timeout: 10_000 });
    await node(page, routeId).waitFor({ timeout: 10_000 });
    assert.equal(await node(page, ctrId).getAttribute('data-health'), 'ok');
    assert.equal(await node(page, routeId).getAttribute('data-health'), 'ok');
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the same page since the live step');
    let reads = 0;
    const onReq = (r) => { if (new URL(r.url()).pathname === '/api/v1/topology') reads++; };
    page.on('request', onReq);

    /** Watches every frame until both nodes say `health`; resolves with the time (epoch ms) it first saw that. */
    const watch = (health) => page.evaluate(([ids, health]) => {
      window.__turnedAt = null;
      const sel = (id) => document.querySelector(`[data-testid="net-node"][data-id="${CSS.escape(id)}"]`);
      const loop = () => {
        if (ids.every((id) => sel(id)?.dataset.health === health)) window.__turnedAt = performance.timeOrigin + performance.now();
        else requestAnimationFrame(loop);
      };
      requestAnimationFrame(loop);
    }, [[ctrId, routeId], health]);
    const turned = async () => (await page.waitForFunction(() => window.__turnedAt, null, { timeout: 10_000, polling: 20 })).jsonValue();

    // Stop: as the container source reports it (one sync_diff), timed from the send to the frame that shows both red.
    await watch('down');
    const sent = performance.timeOrigin + performance.now();
    routeAgent.setContainer(CONTAINER_ID, 'exited');
    const down = (await turned()) - sent;
    // Red: the status dot is drawn in the theme's "bad" colour.
    const colours = await page.evaluate((ids) => {
      const probe = document.createElement('span');
      probe.style.color = 'var(--bad)';
      document.body.append(probe);
      const bad = getComputedStyle(probe).color;
      probe.remove();
      return { bad, dots: ids.map((id) => getComputedStyle(document.querySelector(`[data-testid="net-node"][data-id="${CSS.escape(id)}"] .net-dot`)).fill) };
    }, [ctrId, routeId]);
    for (const fill of colours.dots) assert.equal(fill, colours.bad, 'drawn red');
    await watch('ok');
    const sentBack = performance.timeOrigin + performance.now();
    routeAgent.setContainer(CONTAINER_ID, 'running');
    const back = (await turned()) - sentBack;
    page.off('request', onReq);
    report.push(`a container stop turned its node and its route red ${down.toFixed(0)} ms after the agent sent it (back to ok in ${back.toFixed(0)} ms); ${reads} reads of the graph, no reload`);
    t.diagnostic(report.at(-1));
    assert.equal(reads, 0, 'drawn from the stream\'s diffs');
    assert.equal(await page.evaluate(() => window.__noReload), true, 'no reload');
    assert.ok(down < 1000, `red within a second (${down.toFixed(0)} ms)`);

    // Impact of the container: the route is highlighted and its public name listed.
    // Found by name: the map centres on it and opens its details.
    await page.getByTestId('network-search').fill('photos-immich-1');
    await page.getByTestId('network-search').press('Enter');
    await page.waitForFunction((id) => document.querySelector('[data-testid="network-details"]')?.dataset.id === id, ctrId, { timeout: 5000 });
    await page.getByTestId('network-search').fill('');
    await page.getByTestId('net-impact').click();
    await page.getByTestId('net-impact-result').waitFor();
    const expected = await apiGet(`/api/v1/topology/impact?id=${encodeURIComponent(ctrId)}`);
    assert.ok(expected.elements.includes(routeId), 'the API: the route depends on the container');
    assert.equal(await node(page, routeId).getAttribute('data-impact'), 'true', 'the route is highlighted');
    assert.notEqual(await node(page, hostId).getAttribute('data-impact'), 'true', 'the host does not depend on its container');
    assert.match(await page.getByTestId('net-impact-names').textContent(), new RegExp(ROUTE_HOST.replace(/\./g, '\\.')));
    await page.getByTestId('net-close').click();
  });

  step(`frame times while panning ${DEMO_HOSTS + 1} hosts`, async (t) => {
    await page.getByTestId('net-fit').click();
    await sleep(500);
    const fit = await measurePan(page, 4000, 3, 2);
    report.push(frameLine(`panning the whole fleet (fit, scale ${(await scale(page)).toFixed(3)})`, fit));
    t.diagnostic(report.at(-1));
    // Readable zoom, labels drawn, the middle of the fleet.
    await page.getByTestId('network-search').fill(demoHost.label);
    await page.getByTestId('network-search').press('Enter');
    await page.getByTestId('network-search').fill('');
    await sleep(300);
    const mid = await measurePan(page, 4000, 2, 6);
    report.push(frameLine(`panning with labels (scale ${(await scale(page)).toFixed(2)})`, mid));
    t.diagnostic(report.at(-1));
    const box = await page.getByTestId('network-map').boundingBox();
    await page.mouse.move(box.x + box.width * 0.75, box.y + box.height / 2);
    for (let i = 0; i < 12 && (await scale(page)) < 1.3; i++) await page.mouse.wheel(0, -200);
    await sleep(300);
    const zoomed = await measurePan(page, 4000, 2, 6);
    report.push(frameLine(`panning zoomed in with containers as chips (scale ${(await scale(page)).toFixed(2)})`, zoomed));
    t.diagnostic(report.at(-1));
    // Guards against gross jank only; the numbers above are the measurement. This
    // 2-core VM swings with its neighbours: on 2026-12-02 the same build measured
    // p95 50–117 ms on three runs and 367 ms (zoomed in) while other builds ran.
    for (const f of [fit, mid, zoomed]) {
      assert.ok(f.p50 < 100, `median frame time under 100 ms (${fmt(f.p50)})`);
      assert.ok(f.p95 < 500, `p95 frame time under 500 ms (${fmt(f.p95)})`);
    }
  });

  step('phone width: the map, a tap opens details, a pinch zooms', async () => {
    const phone = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 1, hasTouch: true, isMobile: true, colorScheme: 'dark', storageState: await ctx.storageState() });
    phone.setDefaultTimeout(60_000);
    await page.goto('about:blank'); // one map reading the topology at a time: the debug hub is busy enough
    const p = await phone.newPage();
    watchConsole(p, allowedHttpError, problems, allowed);
    try {
      await p.goto(`${hub.url}/network`);
      await p.locator('[data-testid="net-node"][data-kind="host"]').first().waitFor({ timeout: 90_000 });
      assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= 390), 'nothing wider than the phone');
      const m = await p.getByTestId('network-map').boundingBox();
      assert.ok(m.width <= 390 && m.height >= 300, `the map fits (${m.width}×${m.height})`);
      // A tap on a host.
      // A tap on a host in view.
      const { id, x, y } = await p.getByTestId('network-map').evaluate((svg) => {
        const r = svg.getBoundingClientRect();
        for (const g of svg.querySelectorAll('[data-testid="net-node"][data-kind="host"]')) {
          const b = g.getBoundingClientRect();
          const x = b.left + Math.min(20, b.width / 2), y = b.top + b.height / 2;
          if (x > r.left && x < r.right && y > r.top && y < r.bottom && g.contains(document.elementFromPoint(x, y))) return { id: g.dataset.id, x, y };
        }
        return {};
      });
      assert.ok(id, 'a host in view');
      await p.touchscreen.tap(x, y);
      await p.getByTestId('network-details').waitFor();
      assert.equal(await p.getByTestId('network-details').getAttribute('data-id'), id);
      await sleep(300);
      await shot(p, 'network-phone.png');
      // A pinch: two touch pointers moving apart.
      const k0 = await scale(p);
      await p.getByTestId('network-map').evaluate((svg) => {
        const r = svg.getBoundingClientRect();
        const cx = r.left + r.width / 2, cy = r.top + r.height / 3;
        const fire = (type, id, x) => svg.dispatchEvent(new PointerEvent(type, { pointerId: id, pointerType: 'touch', isPrimary: id === 1, bubbles: true, clientX: x, clientY: cy }));
        fire('pointerdown', 1, cx - 20);
        fire('pointerdown', 2, cx + 20);
        for (let i = 1; i <= 10; i++) {
          fire('pointermove', 1, cx - 20 - i * 8);
          fire('pointermove', 2, cx + 20 + i * 8);
        }
        fire('pointerup', 1, cx - 100);
        fire('pointerup', 2, cx + 100);
      });
      const k1 = await scale(p);
      assert.ok(k1 > k0 * 2, `the pinch zoomed in (${k0} → ${k1})`);
      await p.getByTestId('net-close').click();
      await p.getByTestId('network-details').waitFor({ state: 'detached' });
    } finally {
      await phone.close();
    }
  });

  step('logged no console errors', (t) => {
    for (const line of allowed) t.diagnostic(`allowed: ${line}`);
    assert.deepEqual(problems, []);
  });
});
