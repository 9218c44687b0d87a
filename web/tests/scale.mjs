// The web UI with a large fleet: a real hub (`twinbay hub`), `twinbay sim`
// enrolling N simulated agents on a join token, and Debian's Chromium. It
// measures what a user of a big fleet waits for: the first render of the
// Hosts screen and of the Overview, frame times while scrolling the host list
// with live updates arriving, and the bytes the browser received on the
// stream in its first 10 s (Chrome's own count, CDP Network.webSocketFrameReceived).
// It asserts only what a user relies on: every host listed, the list scrolls,
// updates arrive, a host opens with its whole twin.
//
// Run: node --experimental-websocket --test web/tests/scale.mjs
// Env: TWINBAY_SCALE_HOSTS (default 1000: a debug build on 2 cores runs this
//      in about a minute; the acceptance run of issue #22 uses 10000),
//      TWINBAY_BIN, CHROMIUM, TWINBAY_SCREENSHOTS as the other browser tests.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, SHOTS, launchBrowser, shot, signIn, sleep, startHub, stepper, stopProcess, watchConsole, allowHttpErrors } from './harness.mjs';

const HOSTS = Number(process.env.TWINBAY_SCALE_HOSTS || 1000);
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const DESKTOP = { width: 1280, height: 800 };
/** How long the fleet may take to connect (10,000 agents ramp at 1,000/s, then sync). */
const CONNECT_MS = Math.max(120_000, HOSTS * 30);

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let sim = null;
let browser, context, page;
const problems = [];
const allowed = [];
const report = [];
let cookie = '';

const api = async (pathname) => {
  const r = await fetch(`${hub.url}${pathname}`, { headers: { cookie } });
  if (!r.ok) throw new Error(`GET ${pathname}: ${r.status}`);
  return r.json();
};
const mb = (b) => `${(b / 1e6).toFixed(2)} MB`;

/**
 * Counts the bytes of the stream's frames as Chrome received them, from the
 * moment `start` is called: text frames by their UTF-8 length, binary
 * (compressed) frames by their decoded size.
 */
async function frameCounter(p) {
  const cdp = await p.context().newCDPSession(p);
  await cdp.send('Network.enable');
  const c = { bytes: 0, frames: 0, binary: 0, since: 0, until: Infinity };
  cdp.on('Network.webSocketFrameReceived', ({ response }) => {
    const now = performance.now();
    if (now < c.since || now > c.until) return;
    c.frames++;
    if (response.opcode === 2) {
      c.binary++;
      c.bytes += Buffer.from(response.payloadData, 'base64').length;
    } else {
      c.bytes += Buffer.byteLength(response.payloadData, 'utf8');
    }
  });
  return c;
}

describe(`the web UI with ${HOSTS} simulated hosts (real browser)`, { timeout: CONNECT_MS + 300_000 }, () => {
  const steps = stepper(it, () => page, () => hub.dir);
  const step = steps.step;

  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-scale-'));
    const data = path.join(hub.dir, 'data');
    await startHub(hub, (listen) => ['hub', '--listen', listen, '--data-dir', data], PASSWORD);
    const { stdout } = await promisify(execFile)(BIN, ['ctl', '--data-dir', data, 'join-token', 'create']);
    const log = createWriteStream(path.join(hub.dir, 'sim.log'));
    sim = spawn(BIN, ['sim', '--join', stdout.trim(), '--agents', String(HOSTS)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    sim.stdout.pipe(log);
    sim.stderr.pipe(log);
    const session = await fetch(`${hub.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: hub.url },
      body: JSON.stringify({ username: 'admin', password: PASSWORD }),
    });
    cookie = session.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const t0 = performance.now();
    for (let up = 0; up < HOSTS; await sleep(1000)) {
      // The hub turns requests away while thousands of agents dial in: try again.
      up = await api('/api/v1/nodes').then((nodes) => nodes.filter((n) => n.connected && n.hostname).length, () => up);
      if (performance.now() - t0 > CONNECT_MS) throw new Error(`only ${up} of ${HOSTS} hosts connected in ${CONNECT_MS / 1000} s`);
    }
    report.push(`${HOSTS} simulated agents connected and synced in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
    page = await context.newPage();
    watchConsole(page, allowHttpErrors('401 /api/v1/session'), problems, allowed);
    await signIn(page, hub.url, 'admin', PASSWORD);
  });

  after(async () => {
    if (report.length) console.log(`\nscale.mjs measurements (${HOSTS} hosts):\n  ${report.join('\n  ')}\n`);
    await browser?.close();
    await stopProcess(sim);
    await stopProcess(hub.proc);
    if (!steps.failed) await fs.rm(hub.dir, { recursive: true, force: true });
    else console.log(`kept ${hub.dir} (hub and sim logs)`);
  });

  step('the Hosts screen lists every host, first render and bytes of the first 10 s measured', async (t) => {
    const p = await context.newPage();
    watchConsole(p, allowHttpErrors('401 /api/v1/session'), problems, allowed);
    const frames = await frameCounter(p);
    frames.since = performance.now();
    frames.until = frames.since + 10_000;
    await p.goto(`${hub.url}/hosts`);
    const ttfr = await p
      .waitForFunction(
        (n) => {
          const list = document.querySelector('[data-testid="hosts-list"]');
          return list && Number(list.dataset.count) === n && list.querySelector('[data-testid="host-row"]') ? performance.now() : 0;
        },
        HOSTS,
        { polling: 'raf', timeout: 60_000 },
      )
      .then((h) => h.jsonValue());
    const snap = await p.evaluate(() => ({ ...window.__twinbay.lastSnapshot, connect: window.__twinbay.connectAt }));
    assert.equal(await p.getByTestId('hosts-count').textContent(), `${HOSTS} hosts`);
    report.push(
      `Hosts screen: first render ${ttfr.toFixed(0)} ms after navigation start (stream asked for at ${snap.connect.toFixed(0)} ms; ` +
        `the summaries of ${snap.nodes} hosts, ${mb(snap.bytes)} of JSON in ${mb(snap.wire)} on the wire, arrived at ${snap.received.toFixed(0)} ms, applied in ${(snap.applied - snap.received).toFixed(0)} ms)`,
    );
    await sleep(Math.max(0, frames.until - performance.now()) + 100);
    report.push(`stream bytes received by the browser in its first 10 s: ${mb(frames.bytes)} in ${frames.frames} frames (${frames.binary} compressed)`);
    t.diagnostic(report.slice(-2).join('\n'));
    await shot(p, 'scale-hosts.png');
    await p.close();
  });

  step('the Overview shows the whole fleet', async () => {
    const p = await context.newPage();
    await p.goto(`${hub.url}/`);
    const ttfr = await p
      .waitForFunction(
        (n) => (new RegExp(`Hosts up\\s*${n} / ${n}`).test(document.querySelector('[data-testid="stat-hosts"]')?.textContent || '') ? performance.now() : 0),
        HOSTS,
        { polling: 'raf', timeout: 60_000 },
      )
      .then((h) => h.jsonValue());
    const containers = (await p.getByTestId('stat-containers').locator('.stat-value').textContent()).match(/(\d+) \/ (\d+)/);
    assert.ok(containers && Number(containers[2]) > 0, `the containers of the fleet are counted (${containers?.[0]})`);
    await p.getByTestId('top-cpu').getByRole('link').first().waitFor();
    report.push(`Overview: first render ${ttfr.toFixed(0)} ms after navigation start (${containers[2]} containers counted)`);
    await p.close();
  });

  step('scrolling the host list with live updates: frame times; updates arrive', async (t) => {
    await page.goto(`${hub.url}/hosts`);
    const list = page.getByTestId('hosts-list');
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="hosts-list"]')?.dataset.count) === n, HOSTS, { timeout: 60_000 });
    const firstId = await page.getByTestId('host-row').first().getAttribute('data-node-id');
    const m = await page.evaluate(async () => {
      const list = document.querySelector('[data-testid="hosts-list"]');
      const deltas = [];
      let long = 0;
      const obs = new PerformanceObserver((l) => { long += l.getEntries().length; });
      try { obs.observe({ type: 'longtask', buffered: false }); } catch { /* not supported */ }
      const applied0 = window.__twinbay.applied;
      const updates0 = window.__twinbay.hostUpdates;
      await new Promise((resolve) => {
        let last = performance.now();
        const end = last + 10_000;
        const loop = (now) => {
          deltas.push(now - last);
          last = now;
          list.scrollTop += 12; // a steady scroll through the fleet
          if (now < end) requestAnimationFrame(loop);
          else resolve();
        };
        requestAnimationFrame(loop);
      });
      obs.disconnect();
      deltas.sort((a, b) => a - b);
      const q = (f) => deltas[Math.min(deltas.length - 1, Math.floor(f * deltas.length))];
      return { frames: deltas.length, p50: q(0.5), p95: q(0.95), max: deltas[deltas.length - 1], long, messages: window.__twinbay.applied - applied0, updates: window.__twinbay.hostUpdates - updates0, scrollTop: list.scrollTop };
    });
    const fmt = (v) => `${v.toFixed(1)} ms`;
    const line = `10 s scrolling the host list with live updates (${m.updates} host updates in ${m.messages} stream messages): ${m.frames} frames, ` +
      `frame time p50 ${fmt(m.p50)}, p95 ${fmt(m.p95)}, max ${fmt(m.max)}, ${m.long} long tasks`;
    t.diagnostic(line);
    report.push(line);
    assert.ok(m.scrollTop > 0, 'the list scrolled');
    assert.notEqual(await page.getByTestId('host-row').first().getAttribute('data-node-id'), firstId, 'other hosts came into view');
    assert.ok(m.updates > 0, `hosts' numbers were updated live (${m.updates})`);
    assert.ok((await page.getByTestId('host-row').count()) < 80, 'only the visible rows are in the DOM');
    await list.evaluate((l) => { l.scrollTop = 0; });
  });

  step('a host opens with its whole twin', async () => {
    // Rows are keyed by host and move as live updates re-sort and re-render
    // the list: the row read a moment ago can be elsewhere, or gone, by the
    // time the pointer lands. So the page that opened is checked against
    // the address it opened at (the host whose link took the click), and a
    // click that found no row is tried again, as a user would.
    const t0 = performance.now();
    for (let attempt = 1; ; attempt++) {
      const link = await page.getByTestId('host-row').first().getByTestId('hostname').getByRole('link').elementHandle();
      try {
        await link.click({ timeout: 5_000 });
        await page.waitForURL(/\/hosts\/[^/?#]+$/, { timeout: 15_000 });
        break;
      } catch (err) {
        if (attempt === 3) throw err;
      }
    }
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    const node = await api(`/api/v1/nodes/${encodeURIComponent(id)}`);
    await page.waitForFunction((n) => document.title === `${n} · twinbay`, node.hostname, { timeout: 15_000 });
    report.push(`a host's page (its whole twin watched) shown ${(performance.now() - t0).toFixed(0)} ms after the click`);
    // The tabs count what the twin holds: the whole twin arrived.
    await page.getByTestId('tab-containers').waitFor({ timeout: 15_000 });
  });

  step('no console errors', () => {
    assert.deepEqual(problems, [], problems.join('\n'));
  });
});
