// Real-browser smoke test: starts `twinbay up` (hub + local agent) on a free
// loopback port with a fresh data dir, drives the embedded UI in headless
// Chromium via playwright-core, and saves screenshots to docs/screenshots/.
//
// Run: node --test web/tests/   (or scripts/browser-test.sh)
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM (default /usr/bin/chromium),
//      TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.resolve(REPO, process.env.TWINBAY_BIN || 'target/debug/twinbay');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(REPO, process.env.TWINBAY_SCREENSHOTS || 'docs/screenshots');
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser, context, page;
let nodeId = '';
let failed = false;
const problems = []; // console errors and uncaught page errors

// Chrome logs every non-2xx response as a console error. These are allowed:
//   GET  /api/v1/session -> 401 at boot when signed out (expected);
//   POST /api/v1/session -> 401 for the deliberate wrong password (expected).
const allowed = []; // allowed messages seen, reported at the end
function allowedHttpError(msg) {
  const m = /status of (\d{3})/.exec(msg.text());
  if (!m) return false;
  const pathname = new URL(msg.location()?.url || '/', 'http://x').pathname;
  return m[1] === '401' && pathname === '/api/v1/session';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const elapsed = (t0) => `${((performance.now() - t0) / 1000).toFixed(2)} s`;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Starts the hub; retries on another port if it dies before /healthz answers
// (e.g. the free port was taken in between).
async function startHub() {
  await fs.access(BIN).catch(() => {
    throw new Error(`twinbay binary not found at ${BIN} (build it or set TWINBAY_BIN)`);
  });
  hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-smoke-'));
  for (let attempt = 1; attempt <= 3; attempt++) {
    hub.port = await freePort();
    hub.url = `http://127.0.0.1:${hub.port}`;
    hub.startedAt = performance.now();
    const logFile = createWriteStream(path.join(hub.dir, `hub-${attempt}.log`));
    const proc = spawn(BIN, ['up', '--listen', `127.0.0.1:${hub.port}`, '--data-dir', path.join(hub.dir, 'data'), '--interval', '1s'], {
      env: { ...process.env, TWINBAY_ADMIN_PASSWORD: PASSWORD, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    hub.proc = proc;
    hub.log = '';
    for (const s of [proc.stdout, proc.stderr]) {
      s.on('data', (d) => { hub.log += d; logFile.write(d); });
    }
    let exited = false;
    proc.on('exit', () => { exited = true; logFile.end(); });
    const deadline = performance.now() + 20_000;
    while (!exited && performance.now() < deadline) {
      try {
        const r = await fetch(`${hub.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) return;
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    if (!exited) throw new Error(`hub did not answer /healthz within 20 s\n${hub.log}`);
    if (attempt === 3) throw new Error(`hub exited before answering /healthz\n${hub.log}`);
  }
}

async function stopHub() {
  const proc = hub.proc;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  if (await Promise.race([gone.then(() => true), sleep(5000).then(() => false)])) return;
  proc.kill('SIGKILL');
  await gone;
}
// Last resort if the runner dies mid-test: never leave the hub running.
process.on('exit', () => { try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ } });

async function shot(p, name) {
  await p.screenshot({ path: path.join(SHOTS, name), animations: 'disabled', caret: 'hide', scale: 'css' });
}

async function newPage(viewport, storageState) {
  const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1, colorScheme: 'light', storageState });
  const p = await ctx.newPage();
  p.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const line = `console.error: ${msg.text()} (${msg.location()?.url || '?'})`;
    (allowedHttpError(msg) ? allowed : problems).push(line);
  });
  p.on('pageerror', (err) => problems.push(`pageerror: ${err.stack || err}`));
  return { ctx, p };
}

// Every step depends on the ones before it; after a failure the rest are skipped.
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

describe('twinbay web UI (real browser)', { timeout: 90_000 }, () => {
  const t0 = performance.now();

  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    await startHub();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    ({ ctx: context, p: page } = await newPage(DESKTOP));
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopHub();
    if (failed) {
      console.error(`smoke: kept ${hub.dir} (hub log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-40).join('\n')}`);
    } else if (hub.dir) {
      await fs.rm(hub.dir, { recursive: true, force: true });
    }
    console.error(`smoke: total ${elapsed(t0)}`);
  });

  step('shows the sign-in form and rejects a wrong password', async () => {
    await page.goto(`${hub.url}/`);
    await page.getByTestId('signin-form').waitFor({ state: 'visible' });
    assert.equal(await page.getByTestId('signin-error').isVisible(), false, 'no error before any attempt');
    await shot(page, 'signin.png');

    await page.getByTestId('signin-username').fill('admin');
    await page.getByTestId('signin-password').fill(`${PASSWORD}-wrong`);
    await page.getByTestId('signin-submit').click();
    const error = page.getByTestId('signin-error');
    await error.waitFor({ state: 'visible', timeout: 5000 });
    assert.match(await error.textContent(), /invalid username or password/);
    assert.equal(await page.getByTestId('signin-password').inputValue(), '', 'password field is cleared');
    assert.equal(await page.getByTestId('signin-form').isVisible(), true, 'still on the sign-in form');
  });

  step('signs in and lists this machine, connected', async (t) => {
    await page.getByTestId('signin-password').fill(PASSWORD);
    const clicked = performance.now();
    await page.getByTestId('signin-submit').click();
    const row = page.getByTestId('node-row').first();
    await row.waitFor({ state: 'visible', timeout: 10_000 });
    t.diagnostic(`first node row: ${elapsed(clicked)} after sign-in click, ${elapsed(hub.startedAt)} after hub start`);
    console.error(`smoke: first node row ${elapsed(clicked)} after sign-in click (${elapsed(hub.startedAt)} after hub start)`);

    assert.equal(await page.getByTestId('signin-form').isVisible(), false);
    assert.match(await page.getByTestId('user').textContent(), /^admin\b/);
    assert.equal(await page.getByTestId('node-row').count(), 1, 'exactly one host: the local agent');
    nodeId = await row.getAttribute('data-node-id');
    assert.ok(nodeId, 'row has data-node-id');
    assert.equal((await row.getByTestId('hostname').textContent()).trim(), os.hostname());
    // The agent is connected right away; wait out the (brief) first render.
    await row.locator('[data-testid="conn"][data-connected="true"]').waitFor({ timeout: 5000 });
    await page.getByText(/1 host · 1 up · 0 down/).waitFor({ timeout: 5000 });
    assert.equal(await page.getByTestId('offline-banner').isVisible(), false, 'no offline banner');
    assert.equal(await page.getByTestId('empty').isVisible(), false, 'no empty state');
  });

  step('CPU or memory updates live without a reload', async (t) => {
    const row = page.locator(`[data-testid="node-row"][data-node-id="${nodeId}"]`);
    const cpu = row.getByTestId('cpu'), mem = row.getByTestId('mem');
    await page.waitForFunction(() => /\d%$/.test(document.querySelector('[data-testid="cpu"]')?.textContent || ''),
      null, { timeout: 5000 });
    assert.match(await cpu.textContent(), /^\d+(\.\d)?%$/);
    assert.match(await mem.textContent(), /^[\d.]+ \w?i?B \/ [\d.]+ \w?i?B$/);
    await page.evaluate(() => { window.__smokeNoReload = true; });
    const before = { cpu: await cpu.textContent(), mem: await mem.textContent() };
    const started = performance.now();
    await page.waitForFunction((b) => {
      const text = (id) => document.querySelector(`[data-testid="${id}"]`)?.textContent;
      return text('cpu') !== b.cpu || text('mem') !== b.mem;
    }, before, { timeout: 8000, polling: 100 });
    const after = { cpu: await cpu.textContent(), mem: await mem.textContent() };
    t.diagnostic(`changed after ${elapsed(started)}: cpu ${before.cpu} -> ${after.cpu}, mem ${before.mem} -> ${after.mem}`);
    assert.equal(await page.evaluate(() => window.__smokeNoReload), true, 'page was not reloaded');
    await sleep(1500); // a couple more samples so the screenshot shows settled bars
    await shot(page, 'fleet.png');
  });

  step('opens the host detail page with a drawn CPU sparkline', async (t) => {
    await page.getByTestId('node-row').first().getByTestId('hostname').getByRole('link').click();
    await page.waitForURL((u) => u.hash === `#/nodes/${encodeURIComponent(nodeId)}`, { timeout: 5000 });
    const title = page.getByTestId('detail-hostname');
    await title.waitFor({ state: 'visible' });
    await page.waitForFunction((h) => document.querySelector('[data-testid="detail-hostname"]')?.textContent === h,
      os.hostname(), { timeout: 5000 });
    assert.equal(await page.getByTestId('detail-status').textContent(), 'connected');
    assert.equal(await page.locator('.detail [data-testid="conn"]').getAttribute('data-connected'), 'true');
    assert.match(await page.getByTestId('identity').textContent(), new RegExp(`Node ID${nodeId}`));
    for (const s of ['sources', 'containers', 'units', 'ports']) {
      assert.equal(await page.getByTestId(`section-${s}`).isVisible(), true, `section-${s} visible`);
    }

    // History starts when the page was loaded: wait for ten samples (also so
    // host.png shows a real line), then look for painted (non-transparent) pixels.
    const started = performance.now();
    await page.waitForFunction(() => {
      const m = /last (\d+) samples/.exec(document.querySelector('.spark-note')?.textContent || '');
      return m && Number(m[1]) >= 10;
    }, null, { timeout: 15_000, polling: 100 });
    t.diagnostic(`10 sparkline samples after ${elapsed(started)} on this page`);
    await sleep(100); // let the frame that drew them finish
    const canvas = await page.getByTestId('cpu-spark').evaluate((c) => {
      const ctx = c.getContext('2d');
      const { data } = ctx.getImageData(0, 0, c.width, c.height);
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
      return { width: c.width, height: c.height, painted };
    });
    t.diagnostic(`canvas ${canvas.width}x${canvas.height}, ${canvas.painted} painted pixels`);
    assert.ok(canvas.width > 0 && canvas.height > 0, 'canvas has a size');
    assert.ok(canvas.painted > 50, `sparkline is drawn (${canvas.painted} painted pixels)`);
    await shot(page, 'host.png');
  });

  step('fleet view fits a phone screen', async () => {
    const { ctx, p } = await newPage(PHONE, await context.storageState());
    try {
      await p.goto(`${hub.url}/#/`);
      const row = p.getByTestId('node-row').first();
      await row.waitFor({ state: 'visible', timeout: 10_000 });
      await p.waitForFunction(() => /\d%$/.test(document.querySelector('[data-testid="cpu"]')?.textContent || ''),
        null, { timeout: 5000 });
      assert.equal((await row.getByTestId('hostname').textContent()).trim(), os.hostname());
      await shot(p, 'fleet-phone.png');
    } finally {
      await ctx.close();
    }
  });

  step('signs out back to the sign-in form', async () => {
    await page.getByTestId('signout').click();
    await page.getByTestId('signin-form').waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.getByTestId('node-row').count(), 0, 'fleet is cleared');
    // The session is really gone on the hub: a reload lands on sign-in again.
    await page.reload();
    await page.getByTestId('signin-form').waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.locator('#shell').isVisible(), false);
  });

  step('logged no console errors', async (t) => {
    for (const line of allowed) t.diagnostic(`allowed: ${line}`);
    assert.deepEqual(problems, []);
  });
});
