// REST calls to the hub (same origin; the session cookie rides along).

import type { ApiTokenInfo, AuditEntry, AuditFilter, Me, NodeView, RangeResponse, TimelineEvent, UserInfo } from './types';

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

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
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
  if (!res.ok) {
    const msg = (json as { error?: { message?: string } } | null)?.error?.message || `${res.status} ${res.statusText}`;
    const retry = Number(res.headers.get('Retry-After'));
    throw new ApiError(res.status, msg, Number.isFinite(retry) && retry > 0 ? retry : undefined);
  }
  return json as T;
}

export const api = {
  whoami: () => call<Me>('GET', '/api/v1/session'),
  signIn: (username: string, password: string) => call<Me>('POST', '/api/v1/session', { username, password }),
  signOut: () => call<void>('DELETE', '/api/v1/session'),
  node: (id: string) => call<NodeView>('GET', `/api/v1/nodes/${encodeURIComponent(id)}`),
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
  // Own account.
  changePassword: (current: string, next: string) => call<void>('PUT', '/api/v1/session/password', { current, new: next }),
  signOutEverywhere: () => call<void>('DELETE', '/api/v1/sessions'),
  // People (admins).
  users: () => call<UserInfo[]>('GET', '/api/v1/users'),
  createUser: (username: string, password: string, role: string, groups?: string[]) =>
    call<{ id: number }>('POST', '/api/v1/users', groups?.length ? { username, password, role, groups } : { username, password, role }),
  updateUser: (id: number, change: { role?: string; password?: string }) => call<void>('PATCH', `/api/v1/users/${id}`, change),
  removeUser: (id: number) => call<void>('DELETE', `/api/v1/users/${id}`),
  // API tokens (admins).
  tokens: () => call<ApiTokenInfo[]>('GET', '/api/v1/tokens'),
  createToken: (name: string, role: string, ttlSecs?: number, groups?: string[]) =>
    call<{ id: number; token: string }>('POST', '/api/v1/tokens', {
      name,
      role,
      ...(ttlSecs ? { ttl_secs: ttlSecs } : {}),
      ...(groups?.length ? { groups } : {}),
    }),
  revokeToken: (id: number) => call<void>('DELETE', `/api/v1/tokens/${id}`),
  // The audit trail (admins), newest first.
  audit: (f: AuditFilter) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v != null && v !== '') q.set(k, String(v));
    return call<AuditEntry[]>('GET', `/api/v1/audit?${q}`);
  },
};
