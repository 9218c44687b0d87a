// Numbers for people.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '—';
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${UNITS[i]}`;
}

export function rate(bps: number | null | undefined): string {
  if (bps == null || !Number.isFinite(bps)) return '—';
  return `${bytes(bps)}/s`;
}

export function pct(v: number | null | undefined): string {
  if (v == null || !Number.isFinite(v)) return '—';
  return `${v >= 10 ? Math.round(v) : v.toFixed(1)}%`;
}

export function duration(secs: number | null | undefined): string {
  if (secs == null || !Number.isFinite(secs) || secs < 0) return '—';
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m`;
  return `${Math.floor(secs)}s`;
}

export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (ms == null) return 'never';
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${Math.floor(s)}s ago`;
  return `${duration(s)} ago`;
}

export function clock(ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return sameDay ? time : `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${time}`;
}

export function memPct(s: { mem_used: number; mem_total: number } | null | undefined): number | null {
  if (!s || !s.mem_total) return null;
  return (100 * s.mem_used) / s.mem_total;
}

/** Receive plus transmit over every interface but loopback, bytes per second. */
export function netRate(s: { nets?: { iface: string; rx_bps: number; tx_bps: number }[] } | null | undefined): number | null {
  if (!s || !s.nets) return null;
  let sum = 0;
  for (const n of s.nets) if (n.iface !== 'lo') sum += n.rx_bps + n.tx_bps;
  return sum;
}

export const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** A date and time to the minute, local: "2026-11-22 09:14". */
export function dateTime(ms: number | null | undefined): string {
  if (ms == null) return '—';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** How long until `ms`: "in 6d 23h", or "passed". */
export function until(ms: number, now = Date.now()): string {
  const s = (ms - now) / 1000;
  return s <= 0 ? 'passed' : `in ${duration(s)}`;
}

/** A command's duration from milliseconds: "340 ms", "1.2 s", "3m". */
export function durationMs(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return s < 3600 ? `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}` : duration(s);
}
