// Sparklines that start full: a row that stays on screen fetches the last
// few minutes of its host's history once, and the live samples carry on
// from there. A few requests at a time; rows scrolled past fetch nothing.

import { api } from './api';
import { fleet, SPARK_LEN } from './store';

const WINDOW_MS = 5 * 60_000;
const CONCURRENCY = 4;
const done = new Set<string>();
const queue: string[] = [];
let running = 0;

// While the user scrolls, rows fly past: wait until the list rests.
let lastScroll = 0;
let idleTimer = 0;
document.addEventListener('scroll', () => (lastScroll = performance.now()), { capture: true, passive: true });

function pump() {
  const sinceScroll = performance.now() - lastScroll;
  if (sinceScroll < 300) {
    clearTimeout(idleTimer);
    idleTimer = window.setTimeout(pump, 300 - sinceScroll);
    return;
  }
  while (running < CONCURRENCY && queue.length) {
    const id = queue.shift()!;
    const node = fleet.nodes.get(id);
    if (!node) continue;
    running++;
    // The host's interfaces are known when its twin is watched; else the
    // network sparkline fills from live numbers only.
    const ifaces = Object.keys(fleet.detail.get(id)?.interfaces ?? {}).filter((i) => i !== 'lo').slice(0, 8);
    const series = ['cpu', 'mem_used', 'mem_total', ...ifaces.flatMap((i) => [`net_rx_bps{${i}}`, `net_tx_bps{${i}}`])];
    const to = Date.now();
    api
      .metrics(id, series, to - WINDOW_MS, to, SPARK_LEN)
      .then((res) => {
        const col = (name: string) => new Map((res.series.find((s) => s.name === name)?.points ?? []).map((p) => [p[0], p[2]]));
        const cpu = col('cpu');
        const used = col('mem_used');
        const total = col('mem_total');
        const net = new Map<number, number>();
        for (const s of res.series)
          if (s.name.startsWith('net_')) for (const [ts, , avg] of s.points) net.set(ts, (net.get(ts) ?? 0) + avg);
        const points = [...cpu.keys()].sort((a, b) => a - b).map((ts) => ({
          ts,
          cpu: cpu.get(ts) ?? 0,
          mem: total.get(ts) ? (100 * (used.get(ts) ?? 0)) / total.get(ts)! : 0,
          net: net.get(ts) ?? 0,
        }));
        fleet.prependHistory(id, points);
      })
      .catch(() => {
        /* a sparkline without history is still a sparkline */
      })
      .finally(() => {
        running--;
        pump();
      });
  }
}

/** Asks for a host's recent history once (call when its row has been visible a moment). */
export function prefillSpark(id: string) {
  if (done.has(id)) return;
  const sp = fleet.sparks.get(id);
  if (sp && sp.t.length >= SPARK_LEN / 2) return;
  done.add(id);
  queue.push(id);
  pump();
}

/** The row left the screen before its turn: never mind. */
export function cancelPrefill(id: string) {
  const i = queue.indexOf(id);
  if (i >= 0) {
    queue.splice(i, 1);
    done.delete(id);
  }
}

export function resetPrefill() {
  done.clear();
  queue.length = 0;
}
