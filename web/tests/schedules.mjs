// The Schedules screen in a real browser (issue 18): `twinbay up` with the
// local agent labelled `role=ui` and a policy with one action. Checks: the
// cron helper shows the next five runs from the hub in the chosen time zone
// and refuses a pattern that never fires; a schedule created with it lists
// its next run; an edit moves it; "Run now" runs the action on the real agent and the run
// history shows it ending `ok` with its command (and the screen passes
// axe-core's WCAG 2.1 A/AA rules); disable and enable.
//
// Run: TWINBAY_BIN=… node --experimental-websocket --test web/tests/schedules.mjs
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM, TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHOTS, shot, signIn, startHub, stopProcess, watchConsole, launchBrowser, allowHttpErrors, apiAs, stepper } from './harness.mjs';
import { expectAccessible } from './axe.mjs';

const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const POLICY = `actions:
  hello:
    description: Say hello on a schedule
    argv: [echo, "hello from a schedule"]
    timeout: 10s
`;

const hub = { proc: null, port: 0, dir: '', url: '', log: '', startedAt: 0 };
let browser, ctx, page;
const problems = [];
const allowed = [];

/** Chrome logs every refused request; these are the ones the test makes on purpose (the cron helper asked about a pattern that never fires). */
const allowedHttpError = allowHttpErrors('401 /api/v1/session', '400 /api/v1/schedules/preview');
const api = (method, pathname, body) => apiAs(ctx, hub, method, pathname, body);
const steps = stepper(it, () => page, () => hub.dir);
const { step } = steps;

process.on('exit', () => { try { hub.proc?.kill('SIGKILL'); } catch { /* already gone */ } });

describe('schedules', { timeout: 180_000 }, () => {
  before(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-schedules-'));
    const data = path.join(hub.dir, 'data');
    const policy = path.join(hub.dir, 'policy.yaml');
    await fs.writeFile(policy, POLICY);
    await startHub(hub, (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '2s', '--policy', policy, '--label', 'role=ui'], PASSWORD);
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1, colorScheme: 'light', bypassCSP: true });
    page = await ctx.newPage();
    watchConsole(page, allowedHttpError, problems, allowed);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc);
    if (steps.failed) console.error(`schedules: kept ${hub.dir} (hub log, failure.png). Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
  });

  step('the cron helper shows the next five runs in the chosen time zone', async () => {
    await signIn(page, hub.url, 'admin', PASSWORD);
    await page.getByTestId('nav-schedules').click();
    await page.waitForURL((u) => u.pathname === '/schedules');
    await page.getByTestId('schedules-empty').waitFor({ timeout: 10_000 });
    await page.getByTestId('schedule-cron').fill('*/15 * * * *');
    await page.getByTestId('schedule-tz').fill('America/New_York');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="cron-next"]').length === 5, null, { timeout: 10_000 });
    const ms = await page.locator('[data-testid="cron-next"]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-ms'))));
    const now = Date.now();
    assert.ok(ms[0] > now && ms[0] <= now + 15 * 60_000, `the first run is within 15 minutes: ${ms[0]} vs ${now}`);
    for (let i = 1; i < 5; i++) assert.equal(ms[i] - ms[i - 1], 15 * 60_000, 'every quarter hour');
    // Shown in New York's time, with its zone.
    const text = await page.getByTestId('cron-preview').textContent();
    assert.match(text, /America\/New_York/);
    assert.match(text, /E[SD]T|GMT-[45]/, text);
    // A pattern that never fires is refused as it is typed.
    await page.getByTestId('schedule-cron').fill('0 0 30 2 *');
    await page.getByTestId('cron-error').waitFor({ timeout: 10_000 });
    assert.match(await page.getByTestId('cron-error').textContent(), /never fires/);
    await page.getByTestId('schedule-cron').fill('30 2 * * *');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="cron-next"]').length === 5, null, { timeout: 10_000 });
    assert.match(await page.getByTestId('cron-preview').textContent(), /02:30/);
  });

  step('a schedule created with the helper lists its next run', async () => {
    await page.getByTestId('schedule-name').fill('nightly hello');
    await page.getByTestId('schedule-target').fill('role=ui');
    await page.getByTestId('schedule-action').fill('hello');
    await page.getByTestId('schedule-submit').click();
    const row = page.locator('[data-testid="schedule-row"][data-name="nightly hello"]');
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await row.getAttribute('data-enabled'), 'true');
    assert.match(await row.getByTestId('schedule-next').textContent(), /02:30/);
    assert.equal((await row.getByTestId('schedule-last').textContent()).trim(), 'never');
    const { json } = await api('GET', '/api/v1/schedules');
    assert.equal(json.length, 1);
    assert.deepEqual(json[0].target, { group: 'role=ui' });
    assert.equal(json[0].timezone, 'America/New_York');
  });

  step('run now runs it on the host; the history shows the run and its command', async () => {
    const row = page.locator('[data-testid="schedule-row"][data-name="nightly hello"]');
    await row.getByTestId('schedule-run-now').click();
    const ok = page.locator('[data-testid="run-row"][data-status="ok"][data-trigger="manual"]');
    await ok.waitFor({ timeout: 20_000 });
    assert.match(await ok.textContent(), /cmd_/);
    await page.waitForFunction(() => document.querySelector('[data-testid="schedule-last"]')?.textContent?.trim() !== 'never', null, { timeout: 10_000 });
    await page.locator('[data-testid="schedule-state"][data-outcome="ok"]').waitFor({ timeout: 10_000 });
    const { json: list } = await api('GET', '/api/v1/schedules');
    const { json: runs } = await api('GET', `/api/v1/schedules/${list[0].id}/runs`);
    assert.equal(runs.length, 1);
    assert.equal(runs[0].status, 'ok');
    const { json: cmd } = await api('GET', `/api/v1/commands/${runs[0].command_id}`);
    assert.equal(cmd.actor, 'scheduler');
    assert.match(cmd.output.map((o) => o.data).join(''), /hello from a schedule/);
    await shot(page, 'schedules.png');
    // The list, the open run history and the form: WCAG 2.1 A/AA (axe-core).
    await expectAccessible(page, 'schedules');
  });

  step('edit: a new time, the helper follows, the next run moves', async () => {
    const row = page.locator('[data-testid="schedule-row"][data-name="nightly hello"]');
    await row.getByTestId('schedule-edit').click();
    const form = page.getByTestId('schedule-edit-form');
    await form.waitFor();
    const cron = form.locator('input.mono');
    assert.equal(await cron.inputValue(), '30 2 * * *');
    await cron.fill('15 4 * * 1-5');
    await form.getByTestId('cron-preview').filter({ hasText: '04:15' }).waitFor({ timeout: 10_000 });
    await form.locator('button[type="submit"]').click();
    await form.waitFor({ state: 'detached', timeout: 10_000 });
    await page.waitForFunction(() => /04:15/.test(document.querySelector('[data-testid="schedule-next"]')?.textContent || ''), null, { timeout: 10_000 });
    const { json } = await api('GET', '/api/v1/schedules');
    assert.equal(json[0].cron, '15 4 * * 1-5');
    assert.deepEqual(json[0].command, { op: 'action', name: 'hello', args: {} });
  });

  step('disable and enable', async () => {
    const row = page.locator('[data-testid="schedule-row"][data-name="nightly hello"]');
    await row.getByTestId('schedule-toggle').click();
    await page.locator('[data-testid="schedule-row"][data-enabled="false"]').waitFor({ timeout: 10_000 });
    assert.equal((await page.locator('[data-testid="schedule-row"]').getByTestId('schedule-next').textContent()).trim(), '—');
    await page.locator('[data-testid="schedule-row"]').getByTestId('schedule-toggle').click();
    await page.locator('[data-testid="schedule-row"][data-enabled="true"]').waitFor({ timeout: 10_000 });
    assert.deepEqual(problems, [], problems.join('\n'));
  });
});
