// The fleet as the browser knows it. Every host in one line (`nodes`, the
// stream's summary view, kept current at a bounded rate); the whole twin only
// of the hosts a screen watches (`detail`: the host page), and the watched
// collections of every host (`collections`: the Containers, Units and Routes
// lists). Components read it directly and are told to re-render at most once
// per animation frame, however many messages arrived in between (10,000
// agents sending samples must not mean 10,000 renders).

import { memPct, netRate } from './format';
import { FrameListeners } from './frames';
import { LiveTopology } from './topology';
import type { Change, CollectionPart, CommandRecord, Container, FleetCollection, Headline, HostSummary, LiveAlert, NodeView, Policy, Port, Rollout, Route, Sample, StreamMessage, TargetState, TimelineEvent, Unit } from './types';

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

/** The host of a row in a fleet-wide list: enough to name it and offer its verbs. */
export interface RowHost {
  id: string;
  hostname: string;
  connected: boolean;
  policy?: Policy | null;
}

export interface ContainerRow {
  node: RowHost;
  c: Container;
}
export interface UnitRow {
  node: RowHost;
  key: string;
  u: Unit;
}

export interface RouteRow {
  node: RowHost;
  key: string;
  r: Route;
  state: TargetState;
  broken: boolean;
}

type Listener = () => void;

/** Where a route leads now, from its proxy host's twin (as the hub's twin/routes.rs says). */
export function targetState(r: Route, node: { containers: Record<string, Container>; ports: Record<string, Port> }): TargetState {
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

/** A watched collection: each host's part, by host id. */
type Collection = Map<string, CollectionPart>;

class Fleet {
  /** Every host, in one line each. */
  nodes = new Map<string, HostSummary>();
  /** The whole twin of the hosts a screen watches (stream.ts `watchNode`). */
  detail = new Map<string, NodeView>();
  /** The hosts watched, whose twin is kept once it comes. */
  private watched = new Set<string>();
  /** The collections a screen watches (stream.ts `watchCollection`), of every host. */
  collections = new Map<FleetCollection, Collection>();
  sparks = new Map<string, Spark>();
  /** Timeline events seen live since the page opened, newest first. */
  liveEvents: TimelineEvent[] = [];
  /** Commands started or ended since the last snapshot, by id (the newest state of each). */
  liveCommands = new Map<string, CommandRecord>();
  /** Alerts changed since the page opened (stream `alert` frames), by id, each with
   * the `alertSeq` it arrived at (lists read from the API apply the later ones). */
  liveAlerts = new Map<number, { alert: LiveAlert; seq: number }>();
  alertSeq = 0;
  /** Rollouts changed since the page opened (stream `rollout` frames), by id: the newest state of each. */
  liveRollouts = new Map<string, Rollout>();
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
  /** Hosts' updates applied (a summary, a pulse, a sample or diff of a watched host): a batch of summaries is one message but many updates. */
  hostUpdates = 0;
  /** When the last snapshot arrived and was applied (performance.now()), its size as JSON and on the wire. */
  lastSnapshot: { received: number; applied: number; bytes: number; wire: number; nodes: number } | null = null;
  /** Bytes received on the stream (frames as they came, compressed or not), and messages. */
  wireBytes = 0;
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
    this.detail.clear();
    this.collections.clear();
    this.sparks.clear();
    this.liveEvents = [];
    this.liveCommands.clear();
    this.liveRollouts.clear();
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

  /** Every host, by hostname. */
  list(): HostSummary[] {
    return this.derive('list', () =>
      [...this.nodes.values()].sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id)),
    );
  }

  /** Whether a watched collection has arrived (a list shows "loading" until it has). */
  has(c: FleetCollection): boolean {
    return this.collections.has(c);
  }

  private items<T>(c: FleetCollection, id: string): Record<string, T> {
    return (this.collections.get(c)?.get(id)?.items as Record<string, T> | undefined) ?? {};
  }

  private rowHost(p: CollectionPart): RowHost & { resources?: Sample | null } {
    const d = this.detail.get(p.id);
    const n = this.nodes.get(p.id);
    return { id: p.id, hostname: n?.hostname ?? p.hostname, connected: n?.connected ?? false, policy: d?.policy ?? p.policy, resources: d?.resources };
  }

  /** Every container of the fleet (while a screen watches `containers`). */
  containers(): ContainerRow[] {
    return this.derive('containers', () => {
      const out: ContainerRow[] = [];
      for (const p of this.collections.get('containers')?.values() ?? []) {
        const node = this.rowHost(p);
        for (const c of Object.values(p.items as Record<string, Container>)) out.push({ node, c });
      }
      out.sort((a, b) => a.c.name.localeCompare(b.c.name) || a.node.hostname.localeCompare(b.node.hostname));
      return out;
    });
  }

  /** Every unit of the fleet (while a screen watches `units`). */
  units(): UnitRow[] {
    return this.derive('units', () => {
      const out: UnitRow[] = [];
      for (const p of this.collections.get('units')?.values() ?? []) {
        const node = this.rowHost(p);
        for (const [key, u] of Object.entries(p.items as Record<string, Unit>)) out.push({ node, key, u });
      }
      out.sort((a, b) => a.u.name.localeCompare(b.u.name) || a.node.hostname.localeCompare(b.node.hostname));
      return out;
    });
  }

  /** Every proxy route of the fleet with its target's state (while a screen
   * watches `routes`, `containers` and `ports`), recomputed from the live twins. */
  routes(): RouteRow[] {
    return this.derive('routes', () => {
      const out: RouteRow[] = [];
      for (const p of this.collections.get('routes')?.values() ?? []) {
        const node = this.rowHost(p);
        const twin = { containers: this.items<Container>('containers', p.id), ports: this.items<Port>('ports', p.id) };
        for (const [key, r] of Object.entries(p.items as Record<string, Route>)) {
          const state = targetState(r, twin);
          out.push({ node, key, r, state, broken: routeBroken(state) });
        }
      }
      out.sort((a, b) => a.r.host.localeCompare(b.r.host) || a.r.path.localeCompare(b.r.path) || a.node.hostname.localeCompare(b.node.hostname));
      return out;
    });
  }

  /** Keeps host `id`'s whole twin when it comes, and its changes. */
  watch(id: string) {
    this.watched.add(id);
  }

  /** Forgets a host's whole twin (its screen closed). */
  forget(id: string) {
    this.watched.delete(id);
    if (this.detail.delete(id)) this.changed(true);
  }

  /** Forgets a collection (no screen watches it any more). */
  forgetCollection(c: FleetCollection) {
    if (this.collections.delete(c)) this.changed(true);
  }

  apply(msg: StreamMessage) {
    this.applied++;
    switch (msg.type) {
      case 'summaries': {
        if (msg.snapshot) {
          this.nodes.clear();
          for (const n of msg.nodes) this.nodes.set(n.id, n);
          for (const id of [...this.sparks.keys()]) if (!this.nodes.has(id)) this.sparks.delete(id);
          for (const n of msg.nodes) this.pushHeadline(n.id, n.resources);
          this.liveCommands.clear();
          this.snapshots++;
          this.loaded = true;
          this.changed(true);
          break;
        }
        for (const n of msg.nodes) {
          this.nodes.set(n.id, n);
          this.pushHeadline(n.id, n.resources);
        }
        this.hostUpdates += msg.nodes.length + msg.pulses.length;
        for (const p of msg.pulses) {
          const n = this.nodes.get(p.id);
          if (!n) continue;
          // Numbers change in place, as samples did: the structure stays.
          n.last_seen = p.last_seen;
          n.resources = p.resources;
          this.pushHeadline(p.id, p.resources);
        }
        this.changed(msg.nodes.length > 0);
        break;
      }
      case 'collection': {
        let coll = this.collections.get(msg.collection);
        if (msg.snapshot || !coll) {
          coll = new Map();
          this.collections.set(msg.collection, coll);
        }
        for (const p of msg.nodes) coll.set(p.id, p);
        this.changed(true);
        break;
      }
      case 'node': {
        const n = normalise(msg.node);
        if (this.watched.has(n.id)) {
          this.detail.set(n.id, n);
          this.pushSample(n.id, n.resources);
        }
        // A host that synced anew: its part of every watched collection.
        for (const [name, coll] of this.collections)
          coll.set(n.id, { id: n.id, hostname: n.hostname, seq: n.seq, policy: n.policy, items: n[name] as Record<string, unknown> });
        this.changed(true);
        break;
      }
      case 'status': {
        const n = this.detail.get(msg.id);
        if (n) this.detail.set(msg.id, { ...n, connected: msg.connected, last_seen: msg.last_seen, agent_version: msg.agent_version, policy: msg.policy });
        for (const coll of this.collections.values()) {
          const p = coll.get(msg.id);
          if (p) coll.set(msg.id, { ...p, policy: msg.policy });
        }
        this.changed(true);
        break;
      }
      case 'diff': {
        const old = this.detail.get(msg.id);
        // A diff the host's twin already holds (it came before the twin did) is skipped.
        if (old && (old.seq == null || msg.seq > old.seq)) {
          // A new object, so that views keyed on the node see the change.
          const n: NodeView = { ...old };
          applyChanges(n as unknown as Record<string, unknown>, msg.changes, n);
          n.seq = msg.seq;
          this.detail.set(msg.id, n);
        }
        for (const [name, coll] of this.collections) {
          const part = coll.get(msg.id);
          if (part && part.seq != null && msg.seq <= part.seq) continue;
          const mine = msg.changes.filter((c) => c.op !== 'host' && c.collection === name);
          const items = { ...(part?.items ?? {}) };
          for (const ch of mine) {
            if (ch.op === 'upsert') items[ch.key] = ch.value;
            else if (ch.op === 'remove') delete items[ch.key];
          }
          coll.set(msg.id, { id: msg.id, hostname: part?.hostname ?? this.nodes.get(msg.id)?.hostname ?? msg.id, policy: part?.policy, seq: msg.seq, items });
        }
        this.changed(true);
        break;
      }
      case 'metrics': {
        const n = this.detail.get(msg.id);
        if (!n) return;
        this.hostUpdates++;
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
      case 'rollout': {
        const r = msg.rollout;
        const had = this.liveRollouts.get(r.id);
        if (!had || had.updated_ms <= r.updated_ms) this.liveRollouts.set(r.id, r);
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

  private pushHeadline(id: string, h: Headline | null | undefined) {
    if (h) this.pushPoint(id, h.ts_ms, h.cpu_pct, memPct(h) ?? 0, h.net_bps ?? 0);
  }

  private pushSample(id: string, s: Sample | null | undefined) {
    if (s) this.pushPoint(id, s.ts_ms, s.cpu_pct, memPct(s) ?? 0, netRate(s) ?? 0);
  }

  private pushPoint(id: string, ts: number, cpu: number, mem: number, net: number) {
    let sp = this.sparks.get(id);
    if (!sp) {
      sp = { t: [], cpu: [], mem: [], net: [] };
      this.sparks.set(id, sp);
    }
    if (sp.t.length && sp.t[sp.t.length - 1] >= ts) return; // same sample again (snapshot after a lag)
    sp.t.push(ts);
    sp.cpu.push(cpu);
    sp.mem.push(mem);
    sp.net.push(net);
    if (sp.t.length > SPARK_LEN) {
      sp.t.shift();
      sp.cpu.shift();
      sp.mem.shift();
      sp.net.shift();
    }
  }
}

/** Applies a diff's changes to a twin (`n`, and `view` for its host fields). */
function applyChanges(n: Record<string, unknown>, changes: Change[], view: NodeView) {
  for (const ch of changes) {
    if (ch.op === 'host') {
      view.host = ch.value;
      view.hostname = ch.value.hostname;
    } else {
      const coll = { ...((n[ch.collection] as Record<string, unknown>) || {}) };
      if (ch.op === 'upsert') coll[ch.key] = ch.value;
      else delete coll[ch.key];
      n[ch.collection] = coll;
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
