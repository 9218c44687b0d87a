// The twin's past in a real browser, on a real container (issue 24,
// acceptance 4): starts Podman's API service and a busybox container, then
// `twinbay up` (hub + the local agent watching that socket). Once the
// journal holds the container running, the test stops it and sees it exited
// on the host page; then drags the time control back with the mouse (and
// steps it with the keyboard) to a moment when it ran: the banner says so,
// the Containers tab shows it running, the charts mark the moment; "Compare
// with now" lists the transition; "Back to live" returns. From the Events
// screen, "What changed before this" on the container's stop opens the
// change list with the transition. The network screen shows the past too.
//
// Needs: Podman and its local image (scripts/podman-setup.sh, as root).
// Run: bash scripts/browser-test.sh (or node --experimental-websocket --test web/tests/past.mjs)
// Env: TWINBAY_BIN (default target/debug/twinbay), CHROMIUM (default /usr/bin/chromium),
//      TWINBAY_SCREENSHOTS (default docs/screenshots).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHOTS, shot, sleep, startHub, stopProcess, watchConsole, signIn, launchBrowser, podman, startPodmanService, stepper, getJson, allowHttpErrors } from './harness.mjs';

const IMAGE = 'localhost/twinbay-busybox:latest';
const ADMIN_PW = `admin-${randomBytes(8).toString('hex')}`;
const CONTAINER = `twinbay-ui-past-${randomBytes(4).toString('hex')}`;

const hub = { proc: null, port: 0, dir: '', url: '', log: '' };
let podmanService = null;
let containerMade = false;
let browser;
let page;
let ctx;
let nodeId = '';
const problems = [];
const allowed = [];
// The moments the container ran: from when the journal had it running to its stop.
let ranFrom = 0;
let ranTo = 0;

async function waitFor(what, ms, fn) {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}

const mine = (twin) => Object.values(twin.containers || {}).find((c) => c.name === CONTAINER);
const row = (state) => page.locator(`[data-testid="container-row"][data-name="${CONTAINER}"]${state ? `[data-state="${state}"]` : ''}`);
const shownAt = () => Number(new URL(page.url()).searchParams.get('at')) || null;

describe('the twin\'s past in a real browser, on a real container', { timeout: 240_000 }, () => {
  const steps = stepper(it, () => page, () => hub.dir);
  const step = steps.step;

  before(async () => {
    await podman('image', 'exists', IMAGE).catch(() => {
      throw new Error(`podman or its image ${IMAGE} is missing: run scripts/podman-setup.sh (as root)`);
    });
    hub.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'twinbay-past-'));
    await fs.mkdir(SHOTS, { recursive: true });
    const { socket, proc } = await startPodmanService(hub.dir);
    podmanService = proc;
    await podman('run', '-d', '--name', CONTAINER, IMAGE, 'sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done');
    containerMade = true;
    const data = path.join(hub.dir, 'data');
    await startHub(hub, (listen) => ['up', '--listen', listen, '--data-dir', data, '--interval', '1s', '--container-socket', socket], ADMIN_PW);
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, colorScheme: 'light' });
    page = await ctx.newPage();
    watchConsole(page, allowHttpErrors('401 /api/v1/session'), problems, allowed);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopProcess(hub.proc);
    if (containerMade) await podman('rm', '-f', '-t', '0', CONTAINER).catch(() => {});
    await stopProcess(podmanService);
    if (steps.failed) console.error(`past: kept ${hub.dir}. Hub log tail:\n${hub.log.split('\n').slice(-30).join('\n')}`);
    else if (hub.dir) await fs.rm(hub.dir, { recursive: true, force: true });
  });

  step('the journal holds the container running; then it is stopped, and the host page shows it exited', async () => {
    await signIn(page, hub.url, 'admin', ADMIN_PW);
    const nodes = await waitFor('the local node', 20_000, async () => {
      const list = await getJson(ctx, hub, '/api/v1/nodes');
      return list.length ? list : null;
    });
    nodeId = nodes[0].id;
    const base = `/api/v1/nodes/${encodeURIComponent(nodeId)}`;
    await waitFor('the twin with the container running', 20_000, async () => mine(await getJson(ctx, hub, base))?.state === 'running');
    // The journal writes once a second: ask the past until it has it running.
    ranFrom = await waitFor('the journal to hold the container running', 10_000, async () => {
      const t = Date.now();
      const r = await fetch(`${hub.url}${base}?at=${t}`, { headers: { cookie: (await ctx.storageState()).cookies.map((c) => `${c.name}=${c.value}`).join('; ') } });
      if (r.status !== 200) return null;
      return mine(await r.json())?.state === 'running' ? t : null;
    });
    // Let it run a while: the moments to go back to.
    await sleep(8000);
    ranTo = Date.now();
    await podman('stop', '-t', '5', CONTAINER);
    await waitFor('the twin with the container exited', 15_000, async () => mine(await getJson(ctx, hub, base))?.state === 'exited');
    await sleep(1500);
    await page.goto(`${hub.url}/hosts/${encodeURIComponent(nodeId)}?tab=containers`);
    await row('exited').waitFor({ timeout: 15_000 });
    assert.equal(await page.getByTestId('past-banner').count(), 0, 'live: no banner');
  });

  step('dragging the time control back shows the container running at that moment', async () => {
    const control = page.getByTestId('time-control');
    const slider = page.getByTestId('time-slider');
    // Reaching for the control learns where the record starts (the slider's lower bound).
    await control.hover();
    await waitFor('the record start', 5000, async () => Number(await control.getAttribute('data-start')) > 0);
    await sleep(300);
    const min = Number(await slider.getAttribute('min'));
    const max = Number(await slider.getAttribute('max'));
    assert.ok(min <= ranFrom && max >= ranTo, `the slider spans the run: ${min}..${max} vs ${ranFrom}..${ranTo}`);
    // A real drag: from the thumb (at now, the right end) to the middle of the run.
    const box = await slider.boundingBox();
    const thumb = 8; // half of Chromium's 16 px thumb
    const xOf = (v) => box.x + thumb + ((v - min) / (max - min)) * (box.width - 2 * thumb);
    const target = (ranFrom + ranTo) / 2;
    const y = box.y + box.height / 2;
    await page.mouse.move(xOf(max), y);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++) await page.mouse.move(xOf(max) + ((xOf(target) - xOf(max)) * i) / 10, y);
    await page.mouse.up();
    await waitFor('the moment in the URL', 5000, async () => shownAt());
    const at = shownAt();
    assert.ok(at > ranFrom && at < ranTo, `dragged to ${new Date(at).toISOString()}, within the run ${new Date(ranFrom).toISOString()}..${new Date(ranTo).toISOString()}`);
    const banner = page.getByTestId('past-banner');
    await banner.waitFor();
    assert.match(await banner.textContent(), /Showing .* as it was at/);
    await row('running').waitFor({ timeout: 10_000 });
    // The keyboard moves it too: one step back, still within the run.
    await slider.focus();
    await page.keyboard.press('ArrowLeft');
    await waitFor('the moment to move one step', 5000, async () => (shownAt() && shownAt() < at ? true : null));
    assert.ok(shownAt() > ranFrom, 'still within the run');
    await row('running').waitFor({ timeout: 10_000 });
    await shot(page, 'past-host.png');
  });

  step('the charts mark the moment, and every tab keeps it', async () => {
    const at = shownAt();
    await page.getByTestId('tab-overview').click();
    await page.waitForURL((u) => Number(u.searchParams.get('at')) === at);
    await page.locator(`[data-testid="chart-cpu"][data-mark="${at}"]`).waitFor({ timeout: 15_000 });
    assert.match(await page.getByTestId('detail-cpu').textContent(), /—/, 'no live numbers in the past');
  });

  step('"Compare with now" lists the transition; "Back to live" shows it exited again', async () => {
    await page.getByTestId('compare-now').click();
    const subject = page.locator(`[data-testid="change-subject"][data-subject="container ${CONTAINER}"]`);
    await subject.waitFor({ timeout: 10_000 });
    assert.match(await subject.textContent(), /running → exited/);
    // Compare with now is live below the list: no banner.
    assert.equal(await page.getByTestId('past-banner').count(), 0);
    await page.goBack();
    await page.getByTestId('back-to-live').click();
    await page.getByTestId('past-banner').waitFor({ state: 'detached' });
    assert.equal(shownAt(), null);
    await page.getByTestId('tab-containers').click();
    await row('exited').waitFor({ timeout: 10_000 });
  });

  step('"What changed before this" on the stop in the timeline opens the transition', async () => {
    await page.goto(`${hub.url}/events`);
    const stop = page.getByTestId('event-row').filter({ hasText: CONTAINER }).filter({ has: page.locator('.badge', { hasText: /died|stopped|exited/ }) }).first();
    await stop.waitFor({ timeout: 15_000 });
    await stop.getByTestId('what-changed-before').click();
    await page.waitForURL((u) => u.searchParams.get('tab') === 'changes');
    const subject = page.locator(`[data-testid="change-subject"][data-subject="container ${CONTAINER}"]`);
    await subject.waitFor({ timeout: 10_000 });
    const steps = await subject.getByTestId('change-step').allTextContents();
    assert.ok(steps.some((s) => /running → exited/.test(s)), `the stop is a step: ${steps.join(' | ')}`);
    await shot(page, 'past-changes.png');
  });

  step('the network screen goes back too', async () => {
    const at = Math.round((ranFrom + ranTo) / 2);
    await page.goto(`${hub.url}/network?at=${at}`);
    await page.getByTestId('past-banner').waitFor();
    await waitFor('the topology then', 15_000, async () => /[1-9]\d* hosts?/.test((await page.getByTestId('network-count').textContent()) || ''));
    const graph = await getJson(ctx, hub, `/api/v1/topology?at=${at}`);
    assert.ok(graph.nodes.some((n) => n.kind === 'container' && n.label === CONTAINER), 'the container is in the topology then');
    await page.getByTestId('back-to-live').click();
    await page.getByTestId('past-banner').waitFor({ state: 'detached' });
  });

  step('no console errors', async () => {
    assert.deepEqual(problems, []);
  });
});
