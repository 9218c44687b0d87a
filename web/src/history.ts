// A node's history for the charts: which series to ask for, and how the
// API's [ts, min, avg, max] points become uPlot's aligned columns.

import type uPlot from 'uplot';
import { api } from './api';
import type { RangeResponse } from './types';

export const RANGES: { key: string; label: string; ms: number }[] = [
  { key: '15m', label: '15 min', ms: 15 * 60e3 },
  { key: '1h', label: '1 h', ms: 3600e3 },
  { key: '6h', label: '6 h', ms: 6 * 3600e3 },
  { key: '24h', label: '24 h', ms: 24 * 3600e3 },
  { key: '7d', label: '7 d', ms: 7 * 86400e3 },
  { key: '30d', label: '30 d', ms: 30 * 86400e3 },
];

export interface History {
  resolution: string;
  from: number;
  to: number;
  cpu: uPlot.AlignedData;
  mem: uPlot.AlignedData;
  net: uPlot.AlignedData;
  load: uPlot.AlignedData;
  points: number;
}

/** Sums same-timestamp values of several series (e.g. every interface's rx). */
function sumSeries(res: RangeResponse, pred: (name: string) => boolean): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of res.series) {
    if (!pred(s.name)) continue;
    for (const [ts, , avg] of s.points) out.set(ts, (out.get(ts) ?? 0) + avg);
  }
  return out;
}

function align(maps: Map<number, number>[]): uPlot.AlignedData {
  const ts = new Set<number>();
  for (const m of maps) for (const t of m.keys()) ts.add(t);
  const xs = [...ts].sort((a, b) => a - b);
  return [xs.map((t) => t / 1000), ...maps.map((m) => xs.map((t) => m.get(t) ?? null))] as uPlot.AlignedData;
}

const one = (res: RangeResponse, name: string, col = 2) =>
  new Map((res.series.find((s) => s.name === name)?.points ?? []).map((p) => [p[0], p[col]] as [number, number]));

export async function loadHistory(id: string, rangeMs: number, maxPoints: number, end?: number): Promise<History> {
  const names = await api.series(id);
  const nets = names.filter((n) => /^net_(rx|tx)_bps\{/.test(n) && n !== 'net_rx_bps{lo}' && n !== 'net_tx_bps{lo}').slice(0, 40);
  const to = end ?? Date.now();
  const from = to - rangeMs;
  const res = await api.metrics(id, ['cpu', 'mem_used', 'mem_total', 'load1', ...nets], from, to, maxPoints);
  const cpu = align([one(res, 'cpu'), one(res, 'cpu', 3)]);
  const mem = align([one(res, 'mem_used'), one(res, 'mem_total')]);
  const net = align([sumSeries(res, (n) => n.startsWith('net_rx_bps{')), sumSeries(res, (n) => n.startsWith('net_tx_bps{'))]);
  const load = align([one(res, 'load1')]);
  const points = res.series.reduce((a, s) => a + s.points.length, 0);
  return { resolution: res.resolution, from: res.from, to: res.to, cpu, mem, net, load, points };
}

/** Appends one live value per chart (raw resolution only), dropping points older than the range. */
export function appendLive(d: uPlot.AlignedData, ts: number, values: (number | null)[], fromSec: number): uPlot.AlignedData {
  const xs = d[0] as number[];
  if (xs.length && xs[xs.length - 1] >= ts) return d;
  let start = 0;
  while (start < xs.length && xs[start] < fromSec) start++;
  return [
    [...xs.slice(start), ts],
    ...values.map((v, i) => [...((d[i + 1] as (number | null)[]) ?? []).slice(start), v]),
  ] as uPlot.AlignedData;
}
