// Releases and rollouts (docs/updates.md), for the Updates screen and the
// host page's "Update agent": the API calls, and the form's checks and the
// fleet's version counts as pure functions.

import { call } from '../api';
import type { HostSummary, NodeView, Release, Rollout, RolloutHostState, RolloutRequest, RolloutState } from '../types';

const rollout = (id: string) => `/api/v1/rollouts/${encodeURIComponent(id)}`;

export const updatesApi = {
  releases: () => call<Release[]>('GET', '/api/v1/releases'),
  rollouts: () => call<Rollout[]>('GET', '/api/v1/rollouts'),
  rollout: (id: string) => call<Rollout>('GET', rollout(id)),
  start: (req: RolloutRequest) => call<Rollout>('POST', '/api/v1/rollouts', req),
  pause: (id: string) => call<Rollout>('POST', `${rollout(id)}/pause`),
  resume: (id: string) => call<Rollout>('POST', `${rollout(id)}/resume`),
  abort: (id: string) => call<Rollout>('POST', `${rollout(id)}/abort`),
};

/** A rollout that may still change (the screen follows it). */
export const rolloutActive = (s: RolloutState) => s === 'running' || s === 'paused';

/** Per host: a colour tone, an icon (text, hidden from screen readers) and the words shown. */
export const HOST_STATE: Record<RolloutHostState, { tone: string; icon: string; label: string }> = {
  pending: { tone: 'muted', icon: '○', label: 'pending' },
  waiting: { tone: 'muted', icon: '◷', label: 'waiting (offline)' },
  downloading: { tone: 'info', icon: '↓', label: 'downloading' },
  verifying: { tone: 'info', icon: '⚿', label: 'verifying' },
  restarting: { tone: 'info', icon: '↻', label: 'restarting' },
  healthy: { tone: 'ok', icon: '✓', label: 'healthy' },
  rolled_back: { tone: 'warn', icon: '↶', label: 'rolled back' },
  failed: { tone: 'bad', icon: '✕', label: 'failed' },
  skipped: { tone: 'muted', icon: '–', label: 'skipped' },
};

export const ROLLOUT_TONE: Record<RolloutState, string> = { running: 'info', paused: 'warn', halted: 'bad', aborted: 'bad', done: 'ok' };

/** Orders dot-separated parts, numbers as numbers ("10" after "9"), newest first; a missing part is older ("1.4" before "1.4.1"). */
function compareParts(a: string[], b: string[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return 1;
    if (y === undefined) return -1;
    const d = /^\d+$/.test(x) && /^\d+$/.test(y) ? Number(y) - Number(x) : y.localeCompare(x);
    if (d !== 0) return d;
  }
  return 0;
}

/** Orders versions newest first, as semver does: "1.10.0" before "1.9.2", "1.4.0" before "1.4.0-rc1" (build metadata after + ignored). */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const core = v.split('+')[0];
    const i = core.indexOf('-');
    return i < 0 ? { base: core, pre: '' } : { base: core.slice(0, i), pre: core.slice(i + 1) };
  };
  const x = split(a);
  const y = split(b);
  const d = compareParts(x.base.split('.'), y.base.split('.'));
  if (d !== 0) return d;
  if (!x.pre || !y.pre) return x.pre ? 1 : y.pre ? -1 : 0;
  return compareParts(x.pre.split('.'), y.pre.split('.'));
}

export const agentVersion = (n: NodeView | HostSummary) => n.agent_version || ('host' in n ? n.host.agent_version : '') || '';

export interface VersionCount {
  version: string;
  hosts: HostSummary[];
  simulated: number;
}

/** The fleet by agent version, newest version first ('' for hosts that did not say). */
export function versionCounts(nodes: HostSummary[]): VersionCount[] {
  const by = new Map<string, VersionCount>();
  for (const n of nodes) {
    const v = agentVersion(n);
    let c = by.get(v);
    if (!c) {
      c = { version: v, hosts: [], simulated: 0 };
      by.set(v, c);
    }
    c.hosts.push(n);
    if (isSimulated(n)) c.simulated++;
  }
  return [...by.values()].sort((a, b) => (a.version === '' ? 1 : b.version === '' ? -1 : compareVersions(a.version, b.version)));
}

/** Simulated hosts (`twinbay sim`) are flagged by the hub and carry the label `twinbay.simulated=true`. */
export const isSimulated = (n: HostSummary) => !!n.simulated || n.labels?.['twinbay.simulated'] === 'true';

/** The form's batch: a count ("2") or a share of the hosts ("25%"), as the API takes it; or why not. */
export function parseBatch(text: string): { value: number | string } | { error: string } {
  const m = /^\s*(\d+)\s*(%?)\s*$/.exec(text);
  if (!m) return { error: 'a number of hosts (2) or a share of them (25%)' };
  const n = Number(m[1]);
  if (n < 1) return { error: 'at least 1' };
  if (m[2]) return n > 100 ? { error: 'at most 100%' } : { value: `${n}%` };
  return { value: n };
}

/** The pause between batches: "30s", "2m", "500ms", "1h", or milliseconds ("0"); or why not. */
export function parsePause(text: string): { value: string | number } | { error: string } {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { value: Number(t) };
  if (/^\d+(ms|s|m|h)$/.test(t)) return { value: t };
  return { error: 'a duration: 30s, 2m, 500ms, 1h (or 0)' };
}

/** A whole number from `min` up, or why not. */
export function parseCount(text: string, min: number): { value: number } | { error: string } {
  if (!/^\s*\d+\s*$/.test(text)) return { error: 'a whole number' };
  const n = Number(text);
  return n < min ? { error: `at least ${min}` } : { value: n };
}

/** A group selector `key=value` (the hosts whose label `key` is `value`), or why not. */
export function parseGroup(text: string): { value: string } | { error: string } {
  const t = text.trim();
  const i = t.indexOf('=');
  if (i < 1 || i === t.length - 1 || /\s/.test(t.slice(0, i))) return { error: 'a label selector: key=value' };
  return { value: t };
}

/** "all hosts", "group role=web", "3 hosts". */
export function targetText(t: Rollout['target']): string {
  if (t === 'all') return 'all hosts';
  if ('group' in t) return `group ${t.group}`;
  return `${t.nodes.length} chosen host${t.nodes.length === 1 ? '' : 's'}`;
}

/** The newer of a rollout as read and as the stream last said. */
export function newer(a: Rollout | null | undefined, b: Rollout | null | undefined): Rollout | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return b.updated_ms >= a.updated_ms ? b : a;
}

/** Short forms for hashes and keys: the first 12 characters. */
export const short = (s: string | null | undefined) => (s ? (s.length > 12 ? `${s.slice(0, 12)}…` : s) : '—');
