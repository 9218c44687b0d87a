// The fleet as the browser knows it: the hub's snapshot, kept current by the
// stream's diffs, samples and events. Components read it directly and are
// told to re-render at most once per animation frame, however many messages
// arrived in between (500 agents sending samples must not mean 500 renders).

import { memPct, netRate } from './format';
import { FrameListeners } from './frames';
import { LiveTopology } from './topology';
import type { CommandRecord, Container, LiveAlert, NodeView, Route, Sample, StreamMessage, TargetState, TimelineEvent, Unit } from './types';

/** Samples kept per node for the sparklines. */
export const SPARK_LEN = 60;
const LIVE_EVENTS = 300;
/** Commands kept from the stream (the host screens show the last 50 of each). */
const LIVE_COMMANDS = 500;
const LIVE_ALERTS = 1000;

export interface Spark {
  t: number[];
  cpu: number[];
  mem: number[];
  net: number[];
}

export type LinkState = 'connecting' | 'live' | 'offline';

export interface ContainerRow {
  node: NodeView;
  c: Container;
}
export interface UnitRow {
  node: NodeView;
  key: string;
  u: Unit;
}

export interface RouteRow {
  node: NodeView;
  key: string;
  r: Route;
  state: TargetState;
  broken: boolean;
}

type Listener = () => void;

/** Where a route leads now, from its proxy host's twin (as the hub's twin/routes.rs says). */
export function targetState(r: Route, node: NodeView): TargetState {
  const t = r.target;
  switch (t?.kind) {
    case 'container': {
      const c = node.containers[t.id];
      return !c ? 'missing' : c.state === 'running' ? 'running' : 'stopped';
    }
    case 'port':
      return node.ports[t.key] ? 'running' : 'missing';
    case 'external':
      return 'external';
    default:
      return 'unknown';
  }
}

export const routeBroken = (s: TargetState) => s === 'stopped' || s === 'missing';

export function containerFailing(c: Container): boolean {
  if (c.health === 'unhealthy') return true;
  if (c.state === 'dead' || c.state === 'restarting') return true;
  return c.state === 'exited' && c.exit_code != null && c.exit_code !== 0;
}

export function unitFailing(u: Unit): boolean {
  return u.active_state === 'failed';
}

class Fleet {
  nodes = new Map<string, NodeView>();
  sparks = new Map<string, Spark>();
  /** Timeline events seen live since the page opened, newest first. */
  liveEvents: TimelineEvent[] = [];
  /** Commands started or ended since the last snapshot, by id (the newest state of each). */
  liveCommands = new Map<string, CommandRecord>();
  /** Alerts changed since the page opened (stream `alert` frames), by id, each with
   * the `alertSeq` it arrived at (lists read from the API apply the later ones). */
  liveAlerts = new Map<number, { alert: LiveAlert; seq: number }>();
  alertSeq = 0;
  /** Bumped on every live `file.*` timeline event (a version rated: lists of files and changes re-read). */
  fileEvents = 0;
  /** Snapshots applied: after one, lists read from the API may have missed changes. */
  snapshots = 0;
  link: LinkState = 'connecting';
  /** When the next reconnect attempt is due (ms), while offline. */
  retryAt = 0;
  /** Whether a snapshot has arrived since sign-in. */
  loaded = false;
  /** Bumped on every change. */
  version = 0;
  /** Bumped when nodes, their collections or their connection change (not on samples). */
  structVersion = 0;
  /** The topology, while a screen watches it (stream.ts `watchTopology`). */
  topology = new LiveTopology();
  /** Messages applied, for the browser test's frame measurements. */
  applied = 0;
  /** When the last snapshot arrived and was applied (performance.now()), and its size. */
  lastSnapshot: { received: number; applied: number; bytes: number; nodes: number } | null = null;
  /** When the stream was last asked for, and when it opened (performance.now()). */
  connectAt = 0;
  openedAt = 0;

  private listeners = new FrameListeners();
  private memo = new Map<string, { v: number; value: unknown }>();

  subscribe(fn: Listener): () => void {
    return this.listeners.subscribe(fn);
  }

  /** Notifications are coalesced into one per animation frame. */
  private changed(struct: boolean) {
    this.version++;
    if (struct) this.structVersion++;
    this.listeners.notify();
  }

  setLink(link: LinkState, retryAt = 0) {
    this.link = link;
    this.retryAt = retryAt;
    this.changed(false);
  }

  clear() {
    this.nodes.clear();
    this.sparks.clear();
    this.liveEvents = [];
    this.liveCommands.clear();
    this.loaded = false;
    this.memo.clear();
    this.changed(true);
  }

  /** A value derived from the structure, recomputed only when it changed. */
  derive<T>(key: string, compute: () => T): T {
    const hit = this.memo.get(key);
    if (hit && hit.v === this.structVersion) return hit.value as T;
    const value = compute();
    this.memo.set(key, { v: this.structVersion, value });
    return value;
  }

  /** Every node, by hostname. */
  list(): NodeView[] {
    return this.derive('list', () =>
      [...this.nodes.values()].sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id)),
    );
  }

  containers(): ContainerRow[] {
    return this.derive('containers', () => {
      const out: ContainerRow[] = [];
      for (const node of this.list()) for (const c of Object.values(node.containers || {})) out.push({ node, c });
      out.sort((a, b) => a.c.name.localeCompare(b.c.name) || a.node.hostname.localeCompare(b.node.hostname));
      return out;
    });
  }

  units(): UnitRow[] {
    return this.derive('units', () => {
      const out: UnitRow[] = [];
      for (const node of this.list()) for (const [key, u] of Object.entries(node.units || {})) out.push({ node, key, u });
      out.sort((a, b) => a.u.name.localeCompare(b.u.name) || a.node.hostname.localeCompare(b.node.hostname));
      return out;
    });
  }

  /** Every proxy route of the fleet with its target's state, recomputed from the live twins. */
  routes(): RouteRow[] {
    return this.derive('routes', () => {
      const out: RouteRow[] = [];
      for (const node of this.list())
        for (const [key, r] of Object.entries(node.routes || {})) {
          const state = targetState(r, node);
          out.push({ node, key, r, state, broken: routeBroken(state) });
        }
      out.sort((a, b) => a.r.host.localeCompare(b.r.host) || a.r.path.localeCompare(b.r.path) || a.node.hostname.localeCompare(b.node.hostname));
      return out;
    });
  }

  apply(msg: StreamMessage) {
    this.applied++;
    switch (msg.type) {
      case 'snapshot': {
        const seen = new Set<string>();
        this.nodes.clear();
        for (const n of msg.nodes) {
          this.nodes.set(n.id, normalise(n));
          seen.add(n.id);
          this.pushSample(n.id, n.resources);
        }
        for (const id of [...this.sparks.keys()]) if (!seen.has(id)) this.sparks.delete(id);
        this.liveCommands.clear();
        this.snapshots++;
        this.loaded = true;
        this.changed(true);
        break;
      }
      case 'node': {
        this.nodes.set(msg.node.id, normalise(msg.node));
        this.pushSample(msg.node.id, msg.node.resources);
        this.changed(true);
        break;
      }
      case 'status': {
        const n = this.nodes.get(msg.id);
        if (!n) return;
        this.nodes.set(msg.id, { ...n, connected: msg.connected, last_seen: msg.last_seen, agent_version: msg.agent_version });
        this.changed(true);
        break;
      }
      case 'diff': {
        const old = this.nodes.get(msg.id);
        if (!old) return;
        // A new object, so that views keyed on the node see the change.
        const n: NodeView = { ...old };
        for (const ch of msg.changes) {
          if (ch.op === 'host') {
            n.host = ch.value;
            n.hostname = ch.value.hostname;
          } else {
            const coll = { ...((n[ch.collection] as Record<string, unknown>) || {}) };
            if (ch.op === 'upsert') coll[ch.key] = ch.value;
            else delete coll[ch.key];
            (n as unknown as Record<string, unknown>)[ch.collection] = coll;
          }
        }
        n.seq = msg.seq;
        this.nodes.set(msg.id, n);
        this.changed(true);
        break;
      }
      case 'metrics': {
        const n = this.nodes.get(msg.id);
        if (!n) return;
        n.resources = msg.sample;
        n.last_seen = Date.now();
        this.pushSample(msg.id, msg.sample);
        this.changed(false);
        break;
      }
      case 'event': {
        this.liveEvents.unshift(msg.event);
        if (msg.event.kind.startsWith('file.')) this.fileEvents++;
        if (this.liveEvents.length > LIVE_EVENTS) this.liveEvents.length = LIVE_EVENTS;
        this.changed(false);
        break;
      }
      case 'topology':
      case 'topology_diff': {
        this.topology.apply(msg);
        this.changed(false);
        break;
      }
      case 'command': {
        const c = msg.command;
        this.liveCommands.delete(c.id); // re-inserted: the map stays in arrival order
        this.liveCommands.set(c.id, c);
        if (this.liveCommands.size > LIVE_COMMANDS) this.liveCommands.delete(this.liveCommands.keys().next().value as string);
        this.changed(false);
        break;
      }
      case 'alert': {
        this.alertSeq++;
        this.liveAlerts.delete(msg.alert.id); // re-inserted: the map stays in arrival order
        this.liveAlerts.set(msg.alert.id, { alert: msg.alert, seq: this.alertSeq });
        if (this.liveAlerts.size > LIVE_ALERTS) this.liveAlerts.delete(this.liveAlerts.keys().next().value as number);
        this.changed(false);
        break;
      }
      default:
        break; // a message type this UI does not know yet
    }
  }

  /** Puts history older than the live samples in front of them (see prefill.ts). */
  prependHistory(id: string, points: { ts: number; cpu: number; mem: number; net: number }[]) {
    let sp = this.sparks.get(id);
    if (!sp) {
      sp = { t: [], cpu: [], mem: [], net: [] };
      this.sparks.set(id, sp);
    }
    const first = sp.t.length ? sp.t[0] : Infinity;
    const older = points.filter((p) => p.ts < first).slice(-(SPARK_LEN - sp.t.length));
    if (!older.length) return;
    sp.t.unshift(...older.map((p) => p.ts));
    sp.cpu.unshift(...older.map((p) => p.cpu));
    sp.mem.unshift(...older.map((p) => p.mem));
    sp.net.unshift(...older.map((p) => p.net));
    this.changed(false);
  }

  private pushSample(id: string, s: Sample | null | undefined) {
    if (!s) return;
    let sp = this.sparks.get(id);
    if (!sp) {
      sp = { t: [], cpu: [], mem: [], net: [] };
      this.sparks.set(id, sp);
    }
    if (sp.t.length && sp.t[sp.t.length - 1] >= s.ts_ms) return; // same sample again (snapshot after a lag)
    sp.t.push(s.ts_ms);
    sp.cpu.push(s.cpu_pct);
    sp.mem.push(memPct(s) ?? 0);
    sp.net.push(netRate(s) ?? 0);
    if (sp.t.length > SPARK_LEN) {
      sp.t.shift();
      sp.cpu.shift();
      sp.mem.shift();
      sp.net.shift();
    }
  }
}

function normalise(n: NodeView): NodeView {
  for (const k of ['containers', 'units', 'ports', 'sources', 'interfaces', 'mounts', 'processes', 'disk_health', 'files', 'routes'] as const) {
    if (!n[k]) (n as unknown as Record<string, unknown>)[k] = {};
  }
  if (!n.host) n.host = { hostname: n.hostname } as NodeView['host'];
  return n;
}

export const fleet = new Fleet();
// For the browser test's measurements and for debugging from the console.
(window as unknown as { __twinbay: Fleet }).__twinbay = fleet;
