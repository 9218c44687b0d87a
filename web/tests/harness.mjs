// What the browser tests share: where the binary and screenshots are, a
// twinbay process on a free loopback port (waited for until /healthz
// answers), stopping processes, screenshots, console-error filters, API
// calls as the signed-in user, steps that stop at the first failure, and
// Podman's API on a socket of the test's own.

import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createWriteStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(REPO, process.env.TWINBAY_BIN || 'target/debug/twinbay');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = path.resolve(REPO, process.env.TWINBAY_SCREENSHOTS || 'docs/screenshots');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `fn()` (async) is truthy (polled every 250 ms); its last value. */
export async function until(what, fn, ms = 30_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

export function freePort() {
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

/**
 * Runs `twinbay ARGS(listen)` with the first admin's `password` and waits
 * until /healthz answers; retries on another port if it dies first. Fills in
 * `hub` (`proc`, `port`, `url`, `log`, `startedAt`); its log also goes to
 * `hub.dir/hub-N.log`.
 */
export async function startHub(hub, args, password) {
  await fs.access(BIN).catch(() => {
    throw new Error(`twinbay binary not found at ${BIN} (build it or set TWINBAY_BIN)`);
  });
  for (let attempt = 1; attempt <= 3; attempt++) {
    hub.port = await freePort();
    hub.url = `http://127.0.0.1:${hub.port}`;
    hub.startedAt = performance.now();
    const logFile = createWriteStream(path.join(hub.dir, `hub-${attempt}.log`));
    const proc = spawn(BIN, args(`127.0.0.1:${hub.port}`), {
      env: { ...process.env, TWINBAY_ADMIN_PASSWORD: password, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    hub.proc = proc;
    hub.log = '';
    for (const s of [proc.stdout, proc.stderr]) s.on('data', (d) => { hub.log += d; logFile.write(d); });
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

/** SIGTERM, then SIGKILL after 5 s; nothing if it has exited already. */
export async function stopProcess(proc) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  if (await Promise.race([gone.then(() => true), sleep(5000).then(() => false)])) return;
  proc.kill('SIGKILL');
  await gone;
}

export async function shot(p, name) {
  await p.screenshot({ path: path.join(SHOTS, name), animations: 'disabled', caret: 'hide', scale: 'css' });
}

/**
 * Collects a page's console errors and uncaught errors into `problems`,
 * except console errors `expected(msg)` allows (Chrome logs every non-2xx
 * response as one), which go to `allowed`.
 */
export function watchConsole(p, expected, problems, allowed) {
  p.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const line = `console.error: ${msg.text()} (${msg.location()?.url || '?'})`;
    (expected(msg) ? allowed : problems).push(line);
  });
  p.on('pageerror', (err) => problems.push(`pageerror: ${err.stack || err}`));
}

/** Signs in through the form at `url`; waits for the shell. */
export async function signIn(p, url, username, password) {
  await p.goto(`${url}/`);
  await p.getByTestId('signin-form').waitFor();
  await p.getByTestId('signin-username').fill(username);
  await p.getByTestId('signin-password').fill(password);
  await p.getByTestId('signin-submit').click();
  await p.locator('#shell').waitFor({ timeout: 10_000 });
}

/** Debian's Chromium, headless, with the flags this machine needs (../shared/DEPENDENCIES.md). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

/**
 * A console-error filter (for watchConsole) that allows Chrome's report of
 * the refused requests named, each as `STATUS /path` (Chrome logs every
 * non-2xx response as an error): e.g. the boot's session check while signed
 * out, `401 /api/v1/session`.
 */
export function allowHttpErrors(...allowed) {
  return (msg) => {
    const m = /status of (\d{3})/.exec(msg.text());
    if (!m) return false;
    const pathname = new URL(msg.location()?.url || '/', 'http://x').pathname;
    return allowed.includes(`${m[1]} ${pathname}`);
  };
}

/** A JSON request to `hub` as the browser context `ctx`'s signed-in user: `{ status, json }`. */
export async function apiAs(ctx, hub, method, pathname, body) {
  const cookie = (await ctx.storageState()).cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const r = await fetch(`${hub.url}${pathname}`, {
    method,
    headers: { cookie, 'content-type': 'application/json', origin: hub.url },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json().catch(() => null) };
}

/** GET `pathname` as `ctx`'s user: the JSON of a 200 answer, else an error naming the status. */
export async function getJson(ctx, hub, pathname) {
  const r = await apiAs(ctx, hub, 'GET', pathname);
  if (r.status !== 200) throw new Error(`GET ${pathname}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/**
 * Steps that stop at the first failure: `const steps = stepper(it, () => page, () => hub.dir)`,
 * then `steps.step(name, async (t) => …)`; after one fails the rest are skipped,
 * `steps.failed` is true and the page's screenshot is in the dir as failure.png.
 */
export function stepper(it, page, dir) {
  const s = {
    failed: false,
    step(name, fn) {
      it(name, async (t) => {
        if (s.failed) return t.skip('an earlier step failed');
        try {
          await fn(t);
        } catch (err) {
          s.failed = true;
          await page()?.screenshot({ path: path.join(dir(), 'failure.png') }).catch(() => {});
          throw err;
        }
      });
    },
  };
  return s;
}

/** `podman ARGS`: its stdout, trimmed. */
export async function podman(...args) {
  const { stdout } = await promisify(execFile)('podman', args, { timeout: 60_000 });
  return stdout.trim();
}

/**
 * Podman's Docker-compatible API on a socket of our own in `dir` (as
 * crates/cli/tests/e2e/harness.rs does; its log in dir/podman-service.log):
 * `{ socket, proc }`, once the socket is there. Stop it with stopProcess(proc).
 */
export async function startPodmanService(dir) {
  const socket = path.join(dir, 'podman.sock');
  const log = createWriteStream(path.join(dir, 'podman-service.log'));
  const proc = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  const deadline = performance.now() + 10_000;
  while (!existsSync(socket)) {
    if (performance.now() > deadline) throw new Error('the podman socket did not appear within 10 s');
    if (proc.exitCode !== null) throw new Error(`podman system service exited (${proc.exitCode}); see ${dir}/podman-service.log`);
    await sleep(100);
  }
  return { socket, proc };
}
