// REST calls to the hub (same origin; the session cookie rides along).

import type { Me, NodeView, RangeResponse, TimelineEvent } from './types';

export class ApiError extends Error {
  constructor(public status: number, message: string) {
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
    throw new ApiError(res.status, msg);
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
};
