// REST calls to the hub (same origin; the session cookie rides along).

import type { ApiTokenInfo, AuditEntry, AuditFilter, CommandRecord, CommandRequest, FileDiff, FileEntry, FileVersion, GatewayReport, HubStatus, Impact, Me, NodeChanges, NodeView, OutputChunk, PastNodeView, RangeResponse, Risk, RouteEntry, TimelineEvent, Topology, UserInfo } from './types';

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    /** Seconds to wait, from Retry-After (429). */
    public retryAfter?: number,
  ) {
    super(message);
  }
}

/** One JSON request to the hub: the answer's body, or an ApiError with the hub's message. */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? { Accept: 'application/json' } : { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'the hub cannot be reached');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (!res.ok) throw refusal(res, json);
  return json as T;
}

/** The hub's `{"error": {"code", "message"}}` or `{"error": "message"}` (or the status line) as an ApiError. */
export function refusal(res: Response, json: unknown): ApiError {
  const e = (json as { error?: { message?: string } | string } | null)?.error;
  const msg = (typeof e === 'string' ? e : e?.message) || `${res.status} ${res.statusText}`;
  const retry = Number(res.headers.get('Retry-After'));
  return new ApiError(res.status, msg, Number.isFinite(retry) && retry > 0 ? retry : undefined);
}

/**
 * A request whose answer is read as it arrives (NDJSON command output): the
 * response once its status is 2xx; a refusal throws its message. Aborting
 * `signal` ends the request (and, for a streamed run, the command).
 */
export async function openStream(method: string, path: string, body: unknown, signal: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? { Accept: 'application/x-ndjson' } : { 'Content-Type': 'application/json', Accept: 'application/x-ndjson' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new ApiError(0, 'the hub cannot be reached');
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    throw refusal(res, json);
  }
  return res;
}

export const api = {
  // The hub itself: version, store, connected agents, replicas.
  hub: () => call<HubStatus>('GET', '/api/v1/hub'),
  whoami: () => call<Me>('GET', '/api/v1/session'),
  signIn: (username: string, password: string) => call<Me>('POST', '/api/v1/session', { username, password }),
  signOut: () => call<void>('DELETE', '/api/v1/session'),
  node: (id: string) => call<NodeView>('GET', `/api/v1/nodes/${encodeURIComponent(id)}`),
  // The twin's past (docs/past.md): a node or the topology as it was, what changed.
  nodeAt: (id: string, at: number) => call<PastNodeView>('GET', `/api/v1/nodes/${encodeURIComponent(id)}?at=${Math.round(at)}`),
  nodeChanges: (id: string, from: number, to?: number | null) =>
    call<NodeChanges>('GET', `/api/v1/nodes/${encodeURIComponent(id)}/changes?from=${Math.round(from)}${to != null ? `&to=${Math.round(to)}` : ''}`),
  topologyAt: (at: number) => call<Topology>('GET', `/api/v1/topology?at=${Math.round(at)}`),
  series: (id: string) => call<string[]>('GET', `/api/v1/nodes/${encodeURIComponent(id)}/series`),
  metrics: (id: string, series: string[], from: number, to: number, maxPoints: number) => {
    const q = new URLSearchParams({
      series: series.join(','),
      from: String(Math.round(from)),
      to: String(Math.round(to)),
      resolution: 'auto',
      max_points: String(maxPoints),
    });
    return call<RangeResponse>('GET', `/api/v1/nodes/${encodeURIComponent(id)}/metrics?${q}`);
  },
  events: (before?: number, limit = 200, node?: string) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before != null) q.set('before', String(before));
    const base = node ? `/api/v1/nodes/${encodeURIComponent(node)}/events` : '/api/v1/events';
    return call<TimelineEvent[]>('GET', `${base}?${q}`);
  },
  // Watched files: metadata for viewers, content (diffs) for operators.
  files: (node: string) => call<FileEntry[]>('GET', `/api/v1/nodes/${encodeURIComponent(node)}/files`),
  fileHistory: (node: string, path: string, limit = 100) =>
    call<FileVersion[]>('GET', `/api/v1/nodes/${encodeURIComponent(node)}/files/history?${new URLSearchParams({ path, limit: String(limit) })}`),
  fileDiff: (node: string, path: string, from?: string | null, to?: string | null) => {
    const q = new URLSearchParams({ path });
    if (from) q.set('from', from);
    if (to) q.set('to', to);
    return call<FileDiff>('GET', `/api/v1/nodes/${encodeURIComponent(node)}/files/diff?${q}`);
  },
  fileChanges: (risk?: Risk | null, limit = 200, since?: number) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (risk) q.set('risk', risk);
    if (since != null) q.set('since', String(since));
    return call<FileVersion[]>('GET', `/api/v1/files/changes?${q}`);
  },
  // Proxy routes and the internet gateway.
  routes: () => call<RouteEntry[]>('GET', '/api/v1/routes'),
  gateway: () => call<GatewayReport>('GET', '/api/v1/gateway'),
  // The fleet as a graph (the network screen).
  topology: () => call<Topology>('GET', '/api/v1/topology'),
  impact: (id: string) => call<Impact>('GET', `/api/v1/topology/impact?${new URLSearchParams({ id })}`),
  // Commands (docs/commands.md).
  runCommand: (node: string, req: CommandRequest) => call<CommandRecord>('POST', `/api/v1/nodes/${encodeURIComponent(node)}/commands`, req),
  command: (id: string) => call<CommandRecord & { output?: OutputChunk[] }>('GET', `/api/v1/commands/${encodeURIComponent(id)}`),
  cancelCommand: (id: string) => call<CommandRecord>('DELETE', `/api/v1/commands/${encodeURIComponent(id)}`),
  nodeCommands: (node: string, limit = 50) => call<CommandRecord[]>('GET', `/api/v1/nodes/${encodeURIComponent(node)}/commands?limit=${limit}`),
  // Own account.
  changePassword: (current: string, next: string) => call<void>('PUT', '/api/v1/session/password', { current, new: next }),
  signOutEverywhere: () => call<void>('DELETE', '/api/v1/sessions'),
  // People (admins).
  users: () => call<UserInfo[]>('GET', '/api/v1/users'),
  createUser: (username: string, password: string, role: string, groups?: string[]) =>
    call<{ id: number }>('POST', '/api/v1/users', groups?.length ? { username, password, role, groups } : { username, password, role }),
  updateUser: (id: number, change: { role?: string; password?: string; groups?: string[] }) => call<void>('PATCH', `/api/v1/users/${id}`, change),
  removeUser: (id: number) => call<void>('DELETE', `/api/v1/users/${id}`),
  // API tokens (admins).
  tokens: () => call<ApiTokenInfo[]>('GET', '/api/v1/tokens'),
  createToken: (name: string, role: string, ttlSecs?: number, groups?: string[], readOnly = false) =>
    call<{ id: number; token: string }>('POST', '/api/v1/tokens', {
      name,
      role,
      ...(ttlSecs ? { ttl_secs: ttlSecs } : {}),
      ...(groups?.length ? { groups } : {}),
      ...(readOnly ? { read_only: true } : {}),
    }),
  revokeToken: (id: number) => call<void>('DELETE', `/api/v1/tokens/${id}`),
  // The audit trail (admins), newest first.
  audit: (f: AuditFilter) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v != null && v !== '') q.set(k, String(v));
    return call<AuditEntry[]>('GET', `/api/v1/audit?${q}`);
  },
};
