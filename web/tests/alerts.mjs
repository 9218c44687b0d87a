// Alerts in a real browser (issue 19): `twinbay hub` with short grouping
// waits and three simulated hosts (agent-sim.mjs, the real agent protocol).
// An admin adds a webhook channel (a receiver in this test) on the Alerts
// screen and sends a test (the receiver gets Alertmanager's JSON), adds a
// host-down rule notifying it, then one host's agent leaves: the firing
// alert shows live on the Active tab and in the navigation's badge (no
// reload), the webhook gets it, and the admin acknowledges it with a comment.
//
// Run: TWINBAY_BIN=$PWD/target/debug/twinbay node --experimental-websocket --test web/tests/alerts.mjs
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM, TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BIN, SHOTS, shot, signIn, startHub as startHubProcess, stopProcess, watchConsole, launchBrowser } from './harness.mjs';
import { startAgents } from './agent-sim.mjs';

const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const DESKTOP = { width: 1280, height: 800 };

const hub = { proc: null, port: 0, dir: '', url: '', log: '' };
let browser, page, sim, receiver;
let failed = false;
const problems = [];
const allowed = [];
const received = [];

process.on('exit', () => {
  try {
    hub.proc?.kill('SIGKILL');
  } catch {
    /* already gone */
  }
});

function allowedHttpError(msg) {
  const m = /status of (\d{3})/.exec(msg.text());
  if (!m) return false;
  const pathname = new URL(msg.location()?.url || '/', 'http://x').pathname;
  return m[1] === '401' && pathname === '/api/v1/session';
}

describe('alerts', () => {
  before(async () => {
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-alerts-'));
    const data = path.join(hub.dir, 'data');
    await startHubProcess(
      hub,
      (listen) => ['hub', '--listen', listen, '--data-dir', data, '--alert-group-wait', '1s', '--alert-group-interval', '2s'],
      PASSWORD,
    );
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        try {
          received.push({ path: req.url, json: JSON.parse(body) });
        } catch {
          received.push({ path: req.url, json: null });
        }
        res.writeHead(200).end();
      });
    });
    await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
    sim = await startAgents({ bin: BIN, dataDir: data, hubUrl: hub.url, count: 3, containersPerHost: 2, intervalMs: 2000 });
    browser = await launchBrowser();
    const ctx = await browser.newContext({ viewport: DESKTOP });
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
    await signIn(page, hub.url, 'admin', PASSWORD);
  });

  after(async (t) => {
    if (failed && page) await shot(page, 'alerts-failure.png').catch(() => {});
    sim?.stop();
    receiver?.close();
    await browser?.close();
    await stopProcess(hub.proc);
    if (!failed) await fs.rm(hub.dir, { recursive: true, force: true });
  });

  it('creates a channel and a rule, sends a test, sees a firing alert live and acknowledges it', async (t) => {
    try {
      const port = receiver.address().port;
      await page.getByTestId('nav-alerts').click();
      await page.getByTestId('alerts-tab-active').waitFor();

      // A channel: a webhook to the receiver; its test arrives.
      await page.getByTestId('alerts-tab-channels').click();
      await page.getByTestId('channel-name').fill('ops hook');
      await page.getByTestId('channel-kind').selectOption('webhook');
      await page.getByTestId('channel-url').fill(`http://127.0.0.1:${port}/hook`);
      await page.getByTestId('channel-secret').fill('browser-secret');
      await page.getByTestId('channel-submit').click();
      const row = page.locator('[data-testid="channel-row"][data-name="ops hook"]');
      await row.waitFor();
      await row.getByTestId('channel-test').click();
      await row.getByTestId('channel-test-result').filter({ hasText: 'sent' }).waitFor();
      assert.equal(received.length, 1);
      assert.equal(received[0].json.commonLabels.alertname, 'twinbay test');
      assert.ok(!(await page.content()).includes('browser-secret'), 'the secret is never shown');

      // A rule: host down after 1 s, to that channel.
      await page.getByTestId('alerts-tab-rules').click();
      await page.getByTestId('rule-name').fill('host gone');
      await page.getByTestId('rule-kind').selectOption('host_down');
      await page.getByTestId('rule-for').fill('1s');
      await page.getByTestId('rule-channel-ops hook').check();
      await page.getByTestId('rule-submit').click();
      await page.locator('[data-testid="rule-row"][data-name="host gone"]').waitFor();
      // A default rule notifies nowhere until a channel is added to it.
      const hostDown = page.locator('[data-testid="rule-row"][data-name="host down"]');
      await hostDown.getByTestId('rule-add-channel').selectOption({ label: 'ops hook' });
      await hostDown.filter({ hasText: 'ops hook' }).waitFor();
      await shot(page, 'alerts-rules.png');

      // One host leaves: the alert shows on the Active tab without a reload.
      await page.getByTestId('alerts-tab-active').click();
      await page.getByTestId('alerts-count').waitFor();
      const mine = page.locator('[data-testid="alert-row"][data-rule="host gone"]');
      assert.equal(await mine.count(), 0, 'nothing for the new rule while every host is up');
      const before = await page.evaluate(() => performance.now());
      sim.agents[0].stop();
      await page.getByTestId('counts').filter({ hasText: '1 down' }).waitFor({ timeout: 30_000 });
      const down = await page.evaluate(() => performance.now());
      t.diagnostic(`the host shown down ${Math.round(down - before)} ms after its agent left`);
      const firing = page.locator('[data-testid="alert-row"][data-state="firing"][data-rule="host gone"]');
      await firing.waitFor({ timeout: 20_000 });
      const after = await page.evaluate(() => performance.now());
      t.diagnostic(`firing alert shown ${Math.round(after - down)} ms after the host was shown down (rule: for 1s)`);
      const badge = page.getByTestId('nav-alerts-count');
      await badge.waitFor({ timeout: 10_000 });
      const deadline = Date.now() + 15_000;
      while (!received.some((r) => r.json?.status === 'firing' && r.json?.commonLabels?.alertname === 'host gone') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(received.some((r) => r.json?.status === 'firing' && r.json?.commonLabels?.alertname === 'host gone'), JSON.stringify(received));
      await shot(page, 'alerts-firing.png');

      // Acknowledge it with a comment: the badge counts one fewer.
      const firingNow = Number(await badge.innerText());
      assert.ok(firingNow >= 1, `badge ${firingNow}`);
      await firing.getByTestId('ack-open').click();
      await page.getByTestId('ack-comment').fill('looking at it');
      await page.getByTestId('ack-submit').click();
      const acked = page.locator('[data-testid="alert-row"][data-acked="true"][data-rule="host gone"]');
      await acked.waitFor();
      assert.match(await acked.getByTestId('ack-note').innerText(), /acknowledged by admin: looking at it/);
      await page.waitForFunction(
        (n) => Number(document.querySelector('[data-testid="nav-alerts-count"]')?.textContent || 0) < n,
        firingNow,
        { timeout: 10_000 },
      );

      // The history lists it too.
      await page.getByTestId('alerts-tab-history').click();
      await page.locator('[data-testid="alert-row"][data-rule="host gone"]').waitFor();
      assert.deepEqual(problems, [], problems.join('\n'));
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
