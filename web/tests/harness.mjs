// What the browser tests share: where the binary and screenshots are, a
// twinbay process on a free loopback port (waited for until /healthz
// answers), stopping processes, and screenshots.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(REPO, process.env.TWINBAY_BIN || 'target/debug/twinbay');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = path.resolve(REPO, process.env.TWINBAY_SCREENSHOTS || 'docs/screenshots');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
