// The hub's JSON shapes (crates/proto/src/model.rs, crates/hub/src/twin/view.rs,
// crates/hub/src/timeline.rs). Only what the UI reads is typed.

import type { AlertRecord } from './screens/AlertsApi';

export interface HostInfo {
  hostname: string;
  os: string;
  kernel: string;
  arch: string;
  agent_version: string;
  boot_time: number;
  cpu_cores: number;
  labels: Record<string, string>;
}

export interface Container {
  id: string;
  name: string;
  image: string;
  state: string;
  health?: string | null;
  exit_code?: number | null;
  restart_count: number;
  ports: string[];
  labels: Record<string, string>;
  compose_project?: string | null;
  compose_service?: string | null;
  created?: string | null;
  started_at?: string | null;
}

export interface Unit {
  name: string;
  description: string;
  load_state: string;
  active_state: string;
  sub_state: string;
  since?: number | null;
  user: boolean;
  main_pid?: number | null;
  memory_bytes?: number | null;
  cpu_nsec?: number | null;
  /** The unit file (systemd's FragmentPath). */
  fragment_path?: string | null;
  /** Its drop-ins (DropInPaths). */
  drop_in_paths?: string[];
  /** The files changed since systemd loaded them (NeedDaemonReload). */
  need_daemon_reload?: boolean;
}

// Reverse-proxy routes (crates/proto/src/model.rs Route, crates/hub/src/api/routes.rs).

export type ProxyProvider = 'nginx' | 'caddy' | 'traefik';

export type RouteTarget =
  | { kind: 'container'; id: string; name: string }
  | { kind: 'port'; key: string }
  | { kind: 'external' }
  | { kind: 'unknown' };

export interface Route {
  provider: ProxyProvider;
  /** `host` for a proxy on the host itself, else its container's name. */
  instance: string;
  /** The public name; empty for a catch-all. */
  host: string;
  path: string;
  upstream: string;
  tls: boolean;
  target: RouteTarget;
}

export type TargetState = 'running' | 'stopped' | 'missing' | 'external' | 'unknown';

/** GET /api/v1/routes: one route with where it runs and its target's state. */
export interface RouteEntry extends Route {
  node_id: string;
  node_name: string;
  target_state: TargetState;
  broken: boolean;
}

// The internet gateway (crates/hub/src/api/gateway.rs, crates/hub/src/gateway.rs).

export interface GatewayStatus {
  provider: string | null;
  spec: string | null;
  device: string | null;
  /** As of the last poll; null when it failed. */
  public_ip: string | null;
  /** The last address any poll saw (may be out of date). */
  last_public_ip: string | null;
  upstream: 'up' | 'down' | 'unknown';
  link: { max_up_bps: number | null; max_down_bps: number | null; up_bps: number | null; down_bps: number | null } | null;
  uptime_secs: number | null;
  /** The round trip to the internet the router measures (UniFi); null when it does not. */
  latency_ms: number | null;
  /** The DSL line, when the gateway is a DSL modem that reports it (FRITZ!Box with a password). */
  dsl: GatewayDsl | null;
  last_updated_ms: number | null;
  last_attempt_ms: number | null;
  error: string | null;
}

/** A DSL line as the modem reports it (bits per second). */
export interface GatewayDsl {
  /** `Up`, `Down`, `Initializing`, … as the modem says. */
  status: string;
  up_sync_bps: number | null;
  down_sync_bps: number | null;
  /** The most the line could carry. */
  up_attainable_bps: number | null;
  down_attainable_bps: number | null;
}

export interface GatewayReport extends GatewayStatus {
  gateways: GatewayStatus[];
  /** How to configure one, when none is. */
  hint?: string;
}

// Watched configuration files (crates/proto/src/model.rs WatchedFile,
// crates/hub/src/api/files.rs, crates/hub/src/store/files.rs).

export type FileState = 'present' | 'missing' | 'unreadable';
export type FileContent = 'shipped' | 'secret' | 'too_large' | 'binary' | 'none';
export type Risk = 'low' | 'medium' | 'high' | 'critical';

export interface WatchedFile {
  path: string;
  state: FileState;
  /** Null when missing or unreadable. */
  sha256: string | null;
  /** The hash is an HMAC with the agent's key (a file with secrets). */
  keyed?: boolean;
  size?: number | null;
  mtime_ms?: number | null;
  mode?: number | null;
  uid?: number | null;
  gid?: number | null;
  kind: string;
  content: FileContent;
  redacted: number;
  /** `watch` (asked for), `compose` (a container's compose file), `unit` (a unit's file). */
  origin: string;
  error?: string | null;
}

/** GET /api/v1/nodes/{id}/files: the file as reported now, with its last change. */
export interface FileEntry extends WatchedFile {
  last_change_ms: number | null;
  risk: Risk | null;
  summary: string | null;
  drift: Record<string, unknown>[];
}

export interface Finding {
  rule: string;
  risk: Risk;
  detail: string;
}

export interface FileVersion {
  id: number;
  node_id: string;
  path: string;
  ts_ms: number;
  sha256: string | null;
  prev_sha256: string | null;
  change: 'first_seen' | 'changed' | 'created' | 'deleted' | 'unreadable' | string;
  state: FileState;
  kind: string;
  content: FileContent;
  keyed: boolean;
  size: number | null;
  mode: number | null;
  /** Null while the hub still waits for the content. */
  risk: Risk | null;
  summary: string;
  assessment: { findings?: Finding[]; affected?: unknown[]; drift?: { what?: string; reason?: string }[] } | null;
}

export interface FileDiff {
  path: string;
  from: string | null;
  to: string | null;
  diff: string;
}

export interface Port {
  protocol: string;
  address: string;
  port: number;
  process?: string | null;
  pid?: number | null;
}

export interface SourceStatus {
  name: string;
  available: boolean;
  reason?: string | null;
}

export interface Interface {
  name: string;
  mac?: string | null;
  up: boolean;
  speed_mbps?: number | null;
  duplex?: string | null;
  mtu?: number | null;
}

export interface Mount {
  path: string;
  device: string;
  fs_type: string;
  error?: string | null;
}

export interface Process {
  pid: number;
  name: string;
  cpu_pct: number;
  rss: number;
  uid?: number | null;
}

export interface DiskHealth {
  device: string;
  model: string;
  passed?: boolean | null;
  temp_c?: number | null;
  wear_pct?: number | null;
  error?: string | null;
}

export interface Sample {
  ts_ms: number;
  cpu_pct: number;
  load1: number;
  load5: number;
  load15: number;
  mem_total: number;
  mem_used: number;
  mem_available: number;
  swap_total: number;
  swap_used: number;
  uptime_secs: number;
  cores?: number[];
  cpu_mhz?: number;
  disks?: { mount: string; total: number; used: number; read_bps: number; write_bps: number }[];
  nets?: { iface: string; rx_bps: number; tx_bps: number; rx_errors: number; tx_errors: number }[];
  temps?: { sensor: string; celsius: number }[];
  gpus?: { index: number; name: string; util_pct: number; mem_used: number; mem_total: number; temp_c?: number }[];
  latency?: { target: string; ms?: number | null }[];
  containers?: { id: string; cpu_pct: number; mem_bytes: number; mem_limit: number }[];
}

export type Collection =
  | 'containers' | 'units' | 'ports' | 'sources' | 'interfaces' | 'mounts' | 'processes' | 'disk_health' | 'files' | 'routes';

/** A node as it was (`GET /api/v1/nodes/{id}?at=`): the same fields, plus the moment. */
export interface PastNodeView extends NodeView {
  at: number;
  recorded_at: number;
  first_recorded: number;
}

/** What changed on a node between two moments, per subject (`/nodes/{id}/changes`). */
export interface NodeChanges {
  node_id: string;
  hostname: string;
  since?: number | null;
  subjects: { subject: string; collection: string; name: string; summary: string; transitions: { ts: number; change: string }[] }[];
}

/** How the hub watches a host that runs no agent. */
export interface Agentless {
  interval_secs: number;
  /** What an agent would report that a login shell cannot. */
  without_agent: string[];
}

export interface NodeView {
  id: string;
  hostname: string;
  connected: boolean;
  last_seen?: number | null;
  agent_version: string;
  seq?: number | null;
  resources?: Sample | null;
  simulated?: boolean;
  /** Watched without an agent: the hub collects it over SSH. */
  agentless?: Agentless | null;
  host: HostInfo;
  containers: Record<string, Container>;
  units: Record<string, Unit>;
  ports: Record<string, Port>;
  sources: Record<string, SourceStatus>;
  interfaces: Record<string, Interface>;
  mounts: Record<string, Mount>;
  processes: Record<string, Process>;
  disk_health: Record<string, DiskHealth>;
  /** Watched configuration files by path (protocol 2; empty from older agents). */
  files: Record<string, WatchedFile>;
  /** Reverse-proxy routes by key (protocol 3; empty from older agents). */
  routes: Record<string, Route>;
  /** The agent's command policy (docs/commands.md); absent from older hubs and agents. */
  policy?: Policy | null;
}

export type Change =
  | { op: 'host'; value: HostInfo }
  | { op: 'upsert'; collection: Collection; key: string; value: unknown }
  | { op: 'remove'; collection: Collection; key: string };

export interface TimelineEvent {
  node_id: string;
  ts: number;
  kind: string;
  target: string;
  detail: Record<string, unknown> | null;
}

/** The headline numbers of a host's latest sample (crates/hub/src/twin/view/summary.rs). */
export interface Headline {
  ts_ms: number;
  cpu_pct: number;
  load1: number;
  mem_used: number;
  mem_total: number;
  uptime_secs: number;
  net_bps?: number;
  disk_pct?: number;
  temp_c?: number;
  uplink_bps?: number;
  uplink_util?: number;
}

/** A failing container, failed unit or broken route, named in a host's summary. */
export interface Problem {
  kind: 'container' | 'unit' | 'route';
  key: string;
  name: string;
  state: string;
  exit_code?: number | null;
  target?: string;
}

/** A host in one line: what the fleet-wide screens show (the stream's summary view). */
export interface HostSummary {
  id: string;
  hostname: string;
  connected: boolean;
  agent_version: string;
  simulated: boolean;
  /** Watched without an agent: the hub collects it over SSH. */
  agentless?: Agentless | null;
  os: string;
  labels?: Record<string, string>;
  policy?: Policy | null;
  containers: number;
  containers_running: number;
  containers_failing: number;
  units: number;
  units_failed: number;
  ports: number;
  routes: number;
  routes_broken: number;
  sources_down?: { name: string; reason?: string }[];
  attention?: Problem[];
  last_seen?: number | null;
  resources?: Headline | null;
}

/** The collections a fleet-wide list watches on the stream. */
export type FleetCollection = 'containers' | 'units' | 'ports' | 'routes';

/** One host's part of a watched collection. */
export interface CollectionPart {
  id: string;
  hostname: string;
  seq?: number | null;
  policy?: Policy | null;
  items: Record<string, unknown>;
}

export type StreamMessage =
  | { type: 'summaries'; snapshot: boolean; nodes: HostSummary[]; pulses: { id: string; last_seen?: number | null; resources?: Headline | null }[] }
  | { type: 'collection'; collection: FleetCollection; snapshot: boolean; nodes: CollectionPart[] }
  | { type: 'node'; node: NodeView }
  | { type: 'status'; id: string; connected: boolean; last_seen?: number | null; agent_version: string; policy?: Policy | null }
  | { type: 'diff'; id: string; seq: number; applied_ms: number; changes: Change[] }
  | { type: 'metrics'; id: string; sample: Sample }
  | { type: 'event'; event: TimelineEvent }
  | { type: 'command'; command: CommandRecord }
  | { type: 'alert'; id: string; alert: LiveAlert }
  | { type: 'rollout'; rollout: Rollout }
  | TopologyMessage
  | TopologyDiffMessage;

/** An alert's change on the stream (`pending`, `firing`, `resolved`, an
 * acknowledgement), or `dropped`: pending, it recovered before it fired. */
export type LiveAlert = Omit<AlertRecord, 'state'> & { state: AlertRecord['state'] | 'dropped' };

/** The whole topology, sent to a stream client that watches it. */
export interface TopologyMessage {
  type: 'topology';
  version: number;
  nodes: TopoNode[];
  edges: TopoEdge[];
}

/** What changed in the topology since the last version. */
export interface TopologyDiffMessage {
  type: 'topology_diff';
  version: number;
  upsert_nodes: TopoNode[];
  remove_nodes: string[];
  upsert_edges: TopoEdge[];
  remove_edges: { from: string; to: string; kind: TopoEdgeKind }[];
}

export interface Me {
  username: string;
  role: string;
}

export interface RangeResponse {
  node: string;
  resolution: string;
  from: number;
  to: number;
  series: { name: string; points: [number, number, number, number][] }[];
}

export interface UserInfo {
  id: number;
  username: string;
  role: string;
  created_at: number;
  /** Host groups (`key=value` label selectors) the user is limited to; every host when absent. */
  groups?: string[] | null;
}

export interface ApiTokenInfo {
  id: number;
  name: string;
  role: string;
  created_at: number;
  expires_at: number | null;
  last_used: number | null;
  revoked_at: number | null;
  /** Host groups (`key=value` label selectors) the token is limited to; every host when absent. */
  groups?: string[] | null;
  /** Reads only: the API refuses its writes and MCP lists no act tools to it. */
  read_only?: boolean;
}

export interface AuditEntry {
  id: number;
  ts: number;
  actor: string;
  actor_kind: string;
  address: string;
  user_agent: string;
  action: string;
  target: string;
  outcome: string;
  detail: string;
  prev_hash: string;
  hash: string;
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  target?: string;
  outcome?: string;
  before?: number;
  limit?: number;
}

// Commands (docs/commands.md).

export type Verb = 'status' | 'version' | 'logs' | 'start' | 'stop' | 'restart' | 'update';
export type TargetKind = 'container' | 'unit' | 'user_unit' | 'agent';

export interface Target {
  kind: TargetKind;
  name?: string;
}

export type ArgType = 'string' | 'int' | 'bool' | 'enum' | 'path';

export interface ActionArg {
  name: string;
  type: ArgType;
  description?: string | null;
  required?: boolean;
  default?: string | number | boolean | null;
  pattern?: string | null;
  max_len?: number | null;
  /** string: the value may start with '-' (off unless the policy says so). */
  allow_leading_dash?: boolean;
  min?: number | null;
  max?: number | null;
  values?: string[] | null;
  under?: string | null;
}

export interface ActionSpec {
  description?: string | null;
  role?: string | null;
  timeout_secs?: number | null;
  output_cap?: number | null;
  args?: ActionArg[] | null;
}

export interface Policy {
  lifecycle?: Partial<Record<TargetKind, Verb[]>> | null;
  actions?: Record<string, ActionSpec> | null;
}

export type CommandRequest =
  | { op: 'lifecycle'; target: Target; verb: Verb; lines?: number; follow?: boolean; stream?: boolean; /** `update`: the release to install. */ version?: string }
  | { op: 'action'; name: string; args: Record<string, string>; stream?: boolean };

export type CommandStatus = 'running' | 'ok' | 'failed' | 'refused' | 'timed_out' | 'cancelled' | 'lost';

export interface CommandRecord {
  id: string;
  node_id: string;
  op: Record<string, unknown>;
  summary: string;
  actor: string;
  actor_kind: string;
  status: CommandStatus;
  exit_code: number | null;
  error: string | null;
  started_ms: number;
  ended_ms: number | null;
  duration_ms: number | null;
  truncated: boolean;
  /** The least role that may run it or read its output. */
  role_needed?: string;
}

export interface OutputChunk {
  stream: 'stdout' | 'stderr' | string;
  data: string;
}

/**
 * One line of `GET /api/v1/commands/{id}/output` (and of a streamed run).
 * The record comes under `command`, or beside `type` (both are read).
 */
export type CommandMessage =
  | ({ type: 'command' | 'result'; command?: CommandRecord } & Partial<CommandRecord>)
  | ({ type: 'output' } & OutputChunk)
  | { type: 'error'; message: string };

// The fleet as a graph (crates/hub/src/topology.rs): GET /api/v1/topology.
export type TopoKind = 'internet' | 'gateway' | 'proxy' | 'route' | 'container' | 'unit' | 'port' | 'host';
export type TopoHealth = 'ok' | 'warn' | 'down' | 'unknown';
export type TopoEdgeKind = 'uplink' | 'serves' | 'proxies_to' | 'runs_on' | 'publishes';

export interface TopoNode {
  id: string;
  kind: TopoKind;
  label: string;
  health: TopoHealth;
  status: string;
  /** The twin node (host) it belongs to; absent for the internet and gateways. */
  node_id?: string;
}

export interface TopoEdge {
  from: string;
  to: string;
  kind: TopoEdgeKind;
  /** 0–1 where the link's speed is known; absent means unknown (never 0 %). */
  utilisation?: number;
  bps?: number;
}

export interface Topology {
  nodes: TopoNode[];
  edges: TopoEdge[];
}

/** GET /api/v1/topology/impact?id=: what stops working if `id` goes down. */
export interface Impact {
  id: string;
  elements: string[];
  routes: string[];
  names: string[];
}

// Updates (docs/updates.md): signed releases and rollouts across the fleet.

/** GET /api/v1/releases: one release's manifest. */
export interface Release {
  version: string;
  arch: string;
  sha256: string;
  size: number;
  /** The public key (minisign, `RW…`) that signed it. */
  key: string;
  trusted_comment?: string | null;
  notes?: string | null;
  min_hub_version?: string | null;
  published_ms: number;
  published_by: string;
}

export type RolloutState = 'running' | 'paused' | 'halted' | 'aborted' | 'done';
export type RolloutHostState = 'pending' | 'waiting' | 'downloading' | 'verifying' | 'restarting' | 'healthy' | 'rolled_back' | 'failed' | 'skipped';
export type RolloutTarget = 'all' | { group: string } | { nodes: string[] };

export interface RolloutHost {
  node_id: string;
  hostname: string;
  stage: 'canary' | 'batch';
  /** 0 for the canaries, else 1, 2, … */
  batch: number;
  state: RolloutHostState;
  from_version: string;
  command_id: string | null;
  reason: string | null;
  simulated: boolean;
  updated_ms: number;
}

export interface Rollout {
  id: string;
  version: string;
  target: RolloutTarget;
  canaries: number;
  batch: number | string;
  pause_between_ms: number;
  max_failures: number;
  state: RolloutState;
  reason: string | null;
  created_ms: number;
  created_by: string;
  updated_ms: number;
  finished_ms: number | null;
  counts: { pending: number; waiting: number; updating: number; healthy: number; failed: number; rolled_back: number; skipped: number };
  hosts: RolloutHost[];
}

/** POST /api/v1/rollouts */
export interface RolloutRequest {
  version: string;
  target: RolloutTarget;
  canaries: number;
  batch: number | string;
  pause_between: string | number;
  max_failures: number;
}

// The hub itself (GET /api/v1/hub; crates/hub/src/api/status.rs, docs/replicas.md).

/** One hub replica whose lease was live at the hub's last look. */
export interface ReplicaInfo {
  id: string;
  /** The URL agents dial on it. */
  public_url: string;
  /** Agents connected to it. */
  agents: number;
  started_ms: number;
}

/** The replicas sharing this hub's store and bus, as the one answering sees them. */
export interface HubReplicas {
  /** The id of the replica answering. */
  this: string;
  /** Whether the replica answering holds the singleton lease. */
  leader: boolean;
  /** The id of the replica holding the singleton lease (null while none does). */
  leading?: string | null;
  live: ReplicaInfo[];
  /** Agent links held, by replica id (from the owners bucket). */
  links: Record<string, number>;
  /** Twin changes not published because the bus fell behind. */
  dropped_messages: number;
}

/** GET /api/v1/hub: the hub's own vital signs (only the fields the UI reads). */
export interface HubStatus {
  version: string;
  build_version: string;
  started_ms: number;
  /** `systemd`, `container` or `plain`. */
  install: string;
  nodes: number;
  connected: number;
  /** `sqlite` or `postgres`. */
  store: string;
  /** Absent or null when the hub runs alone. */
  replicas?: HubReplicas | null;
}
