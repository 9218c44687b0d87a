// The schedules API (docs/schedules.md), for the Schedules screen.

import { call } from '../api';

export type ScheduleTarget = { node: string } | { group: string };

export interface Schedule {
  id: number;
  name: string;
  cron: string;
  timezone: string;
  target: ScheduleTarget;
  command: Record<string, unknown>;
  enabled: boolean;
  overlap: 'forbid' | 'allow' | 'replace';
  jitter_secs: number;
  grace_secs: number | null;
  role: string;
  created_by: string;
  created_ms: number;
  updated_ms: number;
  next_run_ms: number | null;
  last_run_ms: number | null;
  schedule_error: string | null;
  /** The latest slot over all its hosts: the first outcome neither ok nor running, else running, else ok. */
  last_outcome: string | null;
}

export interface ScheduleBody {
  name: string;
  cron: string;
  timezone: string;
  target: ScheduleTarget;
  command: Record<string, unknown>;
  enabled?: boolean;
  overlap?: string;
  jitter_secs?: number;
  grace_secs?: number | null;
}

export interface ScheduleRun {
  id: number;
  schedule_id: number;
  node_id: string;
  slot_ms: number;
  status: string;
  command_id: string | null;
  trigger: 'slot' | 'catch_up' | 'manual';
  started_ms: number;
  finished_ms: number | null;
  duration_ms: number | null;
  exit_code: number | null;
  reason: string | null;
}

export interface RunStarted {
  node_id: string;
  status: string;
  command_id: string | null;
  reason: string | null;
}

export interface Preview {
  timezone: string;
  next_runs_ms: number[];
  next_runs: string[];
}

export const schedulesApi = {
  list: () => call<Schedule[]>('GET', '/api/v1/schedules'),
  create: (body: ScheduleBody) => call<Schedule>('POST', '/api/v1/schedules', body),
  update: (id: number, body: ScheduleBody) => call<Schedule>('PUT', `/api/v1/schedules/${id}`, body),
  remove: (id: number) => call<void>('DELETE', `/api/v1/schedules/${id}`),
  runNow: (id: number) => call<RunStarted[]>('POST', `/api/v1/schedules/${id}/run`),
  runs: (id: number, limit = 50) => call<ScheduleRun[]>('GET', `/api/v1/schedules/${id}/runs?limit=${limit}`),
  preview: (cron: string, timezone: string) => call<Preview>('POST', '/api/v1/schedules/preview', { cron, timezone }),
};

/** The body that saves `s` again (for enable/disable). */
export function bodyOf(s: Schedule): ScheduleBody {
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    target: s.target,
    command: s.command,
    enabled: s.enabled,
    overlap: s.overlap,
    jitter_secs: s.jitter_secs,
    grace_secs: s.grace_secs,
  };
}

export function targetText(t: ScheduleTarget): string {
  return 'node' in t ? `host ${t.node}` : `group ${t.group}`;
}

/** A time in a zone, e.g. `Sun 29 Mar 2026, 03:30 CEST`. */
export function inZone(ms: number, timeZone: string): string {
  try {
    return new Intl.DateTimeFormat(undefined, {
      timeZone,
      weekday: 'short',
      year: 'numeric',
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      timeZoneName: 'short',
    }).format(new Date(ms));
  } catch {
    return new Date(ms).toISOString();
  }
}
