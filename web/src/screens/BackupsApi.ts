// The backups API (docs/backups.md), for the Backups screen and the
// overview's card: the catalog, downloads (with progress), verify, prune,
// and backups and restores run as commands.

import { ApiError, api, call, refusal } from '../api';
import type { CommandRecord, Policy } from '../types';

export interface BackupRecord {
  id: string;
  node_id: string;
  job: string;
  /** The command (run) that produced it. */
  command_id: string;
  /** What produced it, e.g. `dir /srv/data` or `action pg-dump db=app`. */
  source: string;
  /** SHA-256 (hex) of the stored, zstd-compressed artifact. */
  sha256: string;
  size: number;
  created_ms: number;
  /** `complete`, or `corrupt` once a verify read other bytes. */
  status: string;
  /** Why retention keeps it, as of the last prune. */
  retention: string;
  verified_ms: number | null;
}

export interface VerifyReport {
  id: string;
  ok: boolean;
  sha256_expected: string;
  sha256_actual: string;
  size_expected: number;
  size_actual: number;
}

export interface Decision {
  id: string;
  keep: boolean;
  reason: string;
}

export interface PruneReport {
  node_id: string;
  job: string;
  rules: string;
  kept: Decision[];
  removed: Decision[];
}

export interface Keep {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export type BackupSource =
  | { kind: 'dir'; path: string; exclude?: string[] }
  | { kind: 'volume'; name: string; exclude?: string[] }
  | { kind: 'action'; name: string; args: Record<string, string> };
export type RestoreTarget = { kind: 'dir'; path: string } | { kind: 'volume'; name: string } | { kind: 'action'; name: string; args: Record<string, string> };

export interface BackupBody {
  op: 'backup';
  job: string;
  source: BackupSource;
  keep?: Keep;
}

export interface RestoreBody {
  op: 'restore';
  backup_id: string;
  target: RestoreTarget;
}

/** What a host's policy says about backups (the twin's `policy`, which the UI's own type leaves out). */
export interface BackupPolicyView {
  roots: string[];
  /** Container volumes that may be backed up and restored into (`*`: any). */
  volumes: string[];
  role: string;
  producers: string[];
  consumers: string[];
}

type RawPolicy = {
  backup?: { roots?: string[]; volumes?: string[]; role?: string } | null;
  actions?: Record<string, { producer?: boolean; consumer?: boolean }> | null;
} | null;

/** The host's backup roots, volumes, producer and consumer actions; null when it can make no backup. */
export function backupPolicy(n: { policy?: Policy | null } | undefined): BackupPolicyView | null {
  const p = (n?.policy ?? null) as RawPolicy;
  if (!p) return null;
  const actions = Object.entries(p.actions || {});
  const producers = actions.filter(([, a]) => a.producer).map(([k]) => k);
  const consumers = actions.filter(([, a]) => a.consumer).map(([k]) => k);
  if (!p.backup && producers.length === 0) return null;
  return { roots: p.backup?.roots || [], volumes: p.backup?.volumes || [], role: p.backup?.role || 'operator', producers, consumers };
}

const enc = encodeURIComponent;

export const backupsApi = {
  list: (limit = 1000) => call<BackupRecord[]>('GET', `/api/v1/backups?limit=${limit}`),
  verify: (id: string) => call<VerifyReport>('POST', `/api/v1/backups/${enc(id)}/verify`),
  prune: (node?: string, job?: string) => call<PruneReport[]>('POST', '/api/v1/backups/prune', { ...(node ? { node } : {}), ...(job ? { job } : {}) }),
  run: (node: string, body: BackupBody | RestoreBody) => call<CommandRecord>('POST', `/api/v1/nodes/${enc(node)}/commands`, body),
  nodeCommands: (node: string, limit = 100) => api.nodeCommands(node, limit),
};

export const downloadUrl = (id: string) => `/api/v1/backups/${enc(id)}/download`;

/** Above this the browser's own download (streamed to disk) is used, not a progress bar with the bytes held here. */
export const IN_PAGE_LIMIT = 512 * 1024 * 1024;

export interface Progress {
  received: number;
  total: number;
}

/** Hex SHA-256 of `blob`, where the page may hash (a secure context); null otherwise. */
export async function sha256Hex(blob: Blob): Promise<string | null> {
  if (!globalThis.crypto?.subtle) return null;
  const d = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Fetches an artifact, reporting progress as it arrives; resolves with its
 * bytes and the file name the hub gives. `signal` aborts it.
 */
export async function fetchArtifact(id: string, onProgress: (p: Progress) => void, signal: AbortSignal): Promise<{ blob: Blob; name: string }> {
  let res: Response;
  try {
    res = await fetch(downloadUrl(id), { credentials: 'same-origin', signal });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new ApiError(0, 'the hub cannot be reached');
  }
  if (!res.ok) throw refusal(res, await res.json().catch(() => null));
  const total = Number(res.headers.get('Content-Length')) || 0;
  const name = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '')?.[1] || `${id}.zst`;
  const reader = res.body!.getReader();
  const parts: BlobPart[] = [];
  let received = 0;
  onProgress({ received, total });
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    received += value.byteLength;
    onProgress({ received, total });
  }
  if (total && received !== total) throw new ApiError(0, `the download ended after ${received} of ${total} bytes`);
  return { blob: new Blob(parts, { type: 'application/zstd' }), name };
}

/** Hands `blob` to the browser as a file download named `name`. */
export function saveBlob(blob: Blob, name: string) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Whether a command record is a backup or a restore run. */
export function isBackupRun(c: CommandRecord): boolean {
  const op = (c.op as { op?: string }).op;
  return op === 'backup' || op === 'restore';
}

/** Outcomes named as failures (a run someone cancelled is not one). */
export const FAILED = new Set(['failed', 'refused', 'timed_out', 'lost']);
