// The alerts API (crates/hub/src/api/alerts.rs) and its shapes, for the
// Alerts screen and the navigation's badge.

export interface AlertRecord {
  id: number;
  rule_id: number;
  node_id: string;
  subject: string;
  state: 'pending' | 'firing' | 'resolved';
  summary: string;
  started_ms: number;
  fired_ms: number | null;
  resolved_ms: number | null;
  acked_ms: number | null;
  acked_by: string | null;
  ack_comment: string | null;
  silenced: boolean;
}

export interface RuleRecord {
  id: number;
  name: string;
  kind: string;
  for_ms: number;
  above: number | null;
  clear: number | null;
  group: string | null;
  node_id: string | null;
  channels: number[];
  enabled: boolean;
  created_ms: number;
  within_ms: number | null;
  window_ms: number | null;
  risk: string | null;
}

export interface ChannelRecord {
  id: number;
  name: string;
  kind: string;
  url: string;
  signed: boolean;
  created_ms: number;
  last_sent_ms: number | null;
  last_error: string | null;
  last_error_ms: number | null;
  quiet_hours: string | null;
}

export interface SilenceRecord {
  id: number;
  rule_id: number | null;
  node_id: string | null;
  labels: Record<string, string>;
  starts_ms: number;
  ends_ms: number;
  comment: string;
  created_by: string;
  created_ms: number;
}

export const RULE_KINDS = [
  'host_down',
  'unit_failed',
  'container_down',
  'route_broken',
  'cpu',
  'memory',
  'disk',
  'disk_forecast',
  'file_changed',
  'backup_failed',
  'schedule_missed',
  'command_failed',
  'audit_broken',
] as const;
export const THRESHOLD_KINDS = ['cpu', 'memory', 'disk'];
/** Raised by something happening: they fire at once (no `for`). */
export const EVENT_KINDS = ['file_changed', 'backup_failed', 'schedule_missed', 'command_failed'];
export const CHANNEL_KINDS = ['webhook', 'ntfy', 'gotify', 'discord', 'slack', 'telegram', 'email'] as const;

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
    throw new Error('the hub cannot be reached');
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
    throw new Error(msg);
  }
  return json as T;
}

export const alertsApi = {
  list: (all: boolean) => call<AlertRecord[]>('GET', all ? '/api/v1/alerts?show=all&limit=200' : '/api/v1/alerts'),
  ack: (id: number, comment: string) => call<AlertRecord>('POST', `/api/v1/alerts/${id}/ack`, { comment }),
  rules: () => call<RuleRecord[]>('GET', '/api/v1/alerts/rules'),
  addRule: (r: Record<string, unknown>) => call<{ id: number }>('POST', '/api/v1/alerts/rules', r),
  updateRule: (id: number, u: { enabled?: boolean; channels?: number[] }) => call<void>('PATCH', `/api/v1/alerts/rules/${id}`, u),
  removeRule: (id: number) => call<void>('DELETE', `/api/v1/alerts/rules/${id}`),
  channels: () => call<ChannelRecord[]>('GET', '/api/v1/alerts/channels'),
  addChannel: (c: Record<string, unknown>) => call<{ id: number }>('POST', '/api/v1/alerts/channels', c),
  testChannel: (id: number) => call<void>('POST', `/api/v1/alerts/channels/${id}/test`, {}),
  removeChannel: (id: number) => call<void>('DELETE', `/api/v1/alerts/channels/${id}`),
  silences: () => call<SilenceRecord[]>('GET', '/api/v1/alerts/silences'),
  addSilence: (s: Record<string, unknown>) => call<{ id: number }>('POST', '/api/v1/alerts/silences', s),
  expireSilence: (id: number) => call<void>('DELETE', `/api/v1/alerts/silences/${id}`),
};
