// The Backups screen's forms: a backup job run now or on a schedule (with
// the cron helper's next five runs), a restore behind a confirmation, and an
// artifact's download with a progress bar and a SHA-256 check.

import { useEffect, useRef, useState } from 'preact/hooks';
import { parseArgs } from '../commands';
import { Confirm } from '../components/Confirm';
import { CronField, localZone } from '../components/CronField';
import { bytes } from '../format';
import type { RowHost } from '../store';
import {
  type BackupBody,
  type BackupPolicyView,
  type BackupRecord,
  backupPolicy,
  backupsApi,
  downloadUrl,
  fetchArtifact,
  IN_PAGE_LIMIT,
  type Keep,
  type Progress,
  type RestoreTarget,
  saveBlob,
  sha256Hex,
} from './BackupsApi';
import { schedulesApi } from './SchedulesApi';

type SourceKind = 'dir' | 'volume' | 'action';

/** Docker's and Podman's volume names (crates/proto `valid_volume_name`). */
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

/** The kind asked for if the host's policy offers it, else the first it does. */
function offered(p: BackupPolicyView, want: SourceKind): SourceKind {
  const has: Record<SourceKind, boolean> = { dir: p.roots.length > 0, volume: p.volumes.length > 0, action: p.producers.length > 0 };
  return has[want] ? want : (['dir', 'volume', 'action'] as SourceKind[]).find((k) => has[k]) ?? want;
}

function ExcludeField({ value, onInput }: { value: string; onInput: (v: string) => void }) {
  return (
    <label class="field">
      Leave out (globs, comma-separated)
      <input name="exclude" spellcheck={false} placeholder="*.tmp, cache" value={value} onInput={(e) => onInput(e.currentTarget.value)} data-testid="backup-exclude" />
    </label>
  );
}

/**
 * What was typed into the backup form, kept while the page lives: when the
 * form is drawn anew (its host list refreshed, the screen left and opened
 * again) the job, what to back up and what to leave out are still there.
 */
const draft: { job: string; kind: SourceKind; exclude: string; when: 'now' | 'schedule' } = { job: '', kind: 'dir', exclude: '', when: 'now' };

/** A `useState` whose value is also kept in `draft[key]`. */
function useDraft<K extends keyof typeof draft>(key: K): [(typeof draft)[K], (v: (typeof draft)[K]) => void] {
  const [value, set] = useState(draft[key]);
  return [
    value,
    (v) => {
      draft[key] = v;
      set(v);
    },
  ];
}

/** A container volume's name: the policy's named volumes offered, any name where it allows `*`. */
function VolumeField({ policy, testId, value, onInput }: { policy: BackupPolicyView; testId: string; value?: string; onInput?: (v: string) => void }) {
  const named = policy.volumes.filter((v) => v !== '*');
  const list = `${testId}-names`;
  return (
    <label class="field">
      Container volume{policy.volumes.includes('*') ? '' : ' (from the policy)'}
      <input
        name="volume"
        required
        spellcheck={false}
        class="mono"
        list={named.length ? list : undefined}
        placeholder={named[0] || 'immich-db'}
        {...(onInput ? { value, onInput: (e: Event) => onInput((e.currentTarget as HTMLInputElement).value) } : { defaultValue: named[0] || '' })}
        data-testid={testId}
      />
      {named.length > 0 && (
        <datalist id={list}>
          {named.map((v) => (
            <option key={v} value={v} />
          ))}
        </datalist>
      )}
    </label>
  );
}

const KEEP_FIELDS: (keyof Keep)[] = ['last', 'daily', 'weekly', 'monthly'];

/**
 * A backup job on one host: a directory under the policy's roots, a
 * container volume the policy names, or a producer action, with its retention; run now, or saved as a schedule.
 */
export function NewBackup({ hosts, onStarted, onScheduled }: { hosts: RowHost[]; onStarted: (commandId: string) => void; onScheduled: () => void }) {
  const [hostId, setHostId] = useState(hosts[0]?.id ?? '');
  const host = hosts.find((h) => h.id === hostId) ?? hosts[0];
  const policy = backupPolicy(host) as BackupPolicyView;
  const [chosen, setKind] = useDraft('kind');
  const [job, setJob] = useDraft('job');
  const [excludeText, setExclude] = useDraft('exclude');
  // What the chosen host offers: a directory needs roots, a volume a volume rule, an action a producer.
  const kind = policy ? offered(policy, chosen) : chosen;
  const [when, setWhen] = useDraft('when');
  const [cron, setCron] = useState('0 3 * * *');
  const [timezone, setTimezone] = useState(localZone());
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget as HTMLFormElement);
    const field = (k: string) => String(data.get(k) || '').trim();
    const job = field('job');
    if (!job) return setError('name the job');
    let source: BackupBody['source'];
    const exclude = field('exclude')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (kind === 'dir') {
      const path = field('path');
      if (!path.startsWith('/')) return setError('the directory is an absolute path under one of the backup roots');
      source = { kind: 'dir', path, ...(exclude.length ? { exclude } : {}) };
    } else if (kind === 'volume') {
      const name = field('volume');
      if (!VOLUME_NAME.test(name)) return setError('name the container volume (letters, digits, _ . -)');
      source = { kind: 'volume', name, ...(exclude.length ? { exclude } : {}) };
    } else {
      const args = parseArgs(field('args'));
      if (typeof args === 'string') return setError(args);
      source = { kind: 'action', name: field('action'), args };
    }
    const keep: Keep = {};
    for (const k of KEEP_FIELDS) {
      const n = Number(field(`keep-${k}`) || 0);
      if (!Number.isInteger(n) || n < 0) return setError(`keep ${k} is a whole number`);
      if (n > 0) keep[k] = n;
    }
    const body: BackupBody = { op: 'backup', job, source, ...(Object.keys(keep).length ? { keep } : {}) };
    setBusy(true);
    setError('');
    setNotice('');
    try {
      if (when === 'now') {
        const c = await backupsApi.run(host.id, body);
        setNotice(`Backup started on ${host.hostname} (${c.id}).`);
        onStarted(c.id);
      } else {
        await schedulesApi.create({ name: field('name') || `backup ${job} on ${host.hostname}`, cron, timezone, target: { node: host.id }, command: body as unknown as Record<string, unknown>, enabled: true, overlap: 'forbid' });
        setNotice(`Scheduled: ${job} on ${host.hostname}.`);
        onScheduled();
      }
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (!host || !policy) return null;
  return (
    <form class="form backup-form" onSubmit={submit} noValidate data-testid="backup-form">
      <h2>Back up a host</h2>
      <div class="form form-row">
        <label class="field">
          Host
          <select value={host.id} onChange={(e) => setHostId(e.currentTarget.value)} data-testid="backup-host">
            {hosts.map((h) => (
              <option key={h.id} value={h.id}>
                {h.hostname}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          Job
          <input name="job" required maxLength={64} spellcheck={false} placeholder="srv-data" value={job} onInput={(e) => setJob(e.currentTarget.value)} data-testid="backup-job" />
        </label>
        <label class="field">
          What
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value as SourceKind)} data-testid="backup-kind">
            <option value="dir" disabled={!policy.roots.length}>
              a directory
            </option>
            <option value="volume" disabled={!policy.volumes.length}>
              a container volume
            </option>
            <option value="action" disabled={!policy.producers.length}>
              a producer action
            </option>
          </select>
        </label>
      </div>
      {kind === 'dir' ? (
        <div class="form form-row">
          <label class="field">
            Directory
            <input key={host.id} name="path" required spellcheck={false} placeholder={policy.roots[0] || '/srv'} defaultValue={policy.roots[0] || ''} class="mono" data-testid="backup-path" />
          </label>
          <ExcludeField value={excludeText} onInput={setExclude} />
        </div>
      ) : kind === 'volume' ? (
        <div class="form form-row">
          <VolumeField policy={policy} key={host.id} testId="backup-volume" />
          <ExcludeField value={excludeText} onInput={setExclude} />
        </div>
      ) : (
        <div class="form form-row">
          <label class="field">
            Producer action
            <select name="action" data-testid="backup-action">
              {policy.producers.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            Arguments (key=value, …)
            <input name="args" spellcheck={false} placeholder="db=app" data-testid="backup-args" />
          </label>
        </div>
      )}
      <p class="hint">
        Backup roots on {host.hostname}: {policy.roots.length ? <span class="mono">{policy.roots.join(', ')}</span> : 'none'} · volumes:{' '}
        {policy.volumes.length ? <span class="mono">{policy.volumes.includes('*') ? 'any' : policy.volumes.join(', ')}</span> : 'none'} · producers: {policy.producers.length ? policy.producers.join(', ') : 'none'} · needs the {policy.role} role.
      </p>
      <fieldset class="form form-row keep-row">
        <legend>Keep (0: no rule; no rule at all keeps every backup)</legend>
        {KEEP_FIELDS.map((k) => (
          <label class="field" key={k}>
            {k}
            <input name={`keep-${k}`} type="number" min={0} max={1000} defaultValue="0" data-testid={`backup-keep-${k}`} />
          </label>
        ))}
      </fieldset>
      <div class="form form-row">
        <label class="field">
          When
          <select value={when} onChange={(e) => setWhen(e.currentTarget.value as 'now' | 'schedule')} data-testid="backup-when">
            <option value="now">now, once</option>
            <option value="schedule">on a schedule</option>
          </select>
        </label>
      </div>
      {when === 'schedule' ? (
        <CronField cron={cron} timezone={timezone} onCron={setCron} onTimezone={setTimezone} testId="backup">
          <label class="field">
            Schedule name
            <input name="name" maxLength={100} placeholder="nightly srv-data" data-testid="backup-schedule-name" />
          </label>
        </CronField>
      ) : null}
      {error ? (
        <p class="form-error" role="alert" data-testid="backup-error">
          {error}
        </p>
      ) : null}
      {notice ? (
        <p class="hint" role="status" data-testid="backup-notice">
          {notice}
        </p>
      ) : null}
      <div>
        <button class="btn btn-primary" type="submit" disabled={busy} data-testid="backup-submit">
          {busy ? 'Working…' : when === 'now' ? 'Back up now' : 'Create schedule'}
        </button>
      </div>
    </form>
  );
}

/** A restore of `b` onto its host, behind a confirmation naming what it overwrites. */
export function RestoreDialog({ b, host, onStarted, onCancel }: { b: BackupRecord; host: RowHost | undefined; onStarted: (commandId: string) => void; onCancel: () => void }) {
  const policy = backupPolicy(host);
  const fromDir = b.source.startsWith('dir ');
  const fromVolume = b.source.startsWith('volume ');
  const [kind, setKind] = useState<SourceKind>(fromVolume ? 'volume' : fromDir || !policy?.consumers.length ? 'dir' : 'action');
  // `dir PATH`, `volume NAME`, either with ` (exclude …)`: back where it came from, by default.
  const origin = b.source.replace(/^(dir|volume) /, '').replace(/ \(exclude .*\)$/, '');
  const [path, setPath] = useState(fromDir ? origin : policy?.roots[0] || '');
  const [volume, setVolume] = useState(fromVolume ? origin : policy?.volumes.find((v) => v !== '*') || '');
  const [action, setAction] = useState(policy?.consumers[0] || '');
  const [args, setArgs] = useState('');
  const name = host?.hostname || b.node_id;
  const go = async () => {
    let target: RestoreTarget;
    if (kind === 'dir') {
      if (!path.trim().startsWith('/')) throw new Error('the directory is an absolute path under one of the backup roots');
      target = { kind: 'dir', path: path.trim() };
    } else if (kind === 'volume') {
      if (!VOLUME_NAME.test(volume.trim())) throw new Error('name the container volume (letters, digits, _ . -)');
      target = { kind: 'volume', name: volume.trim() };
    } else {
      const a = parseArgs(args);
      if (typeof a === 'string') throw new Error(a);
      if (!action) throw new Error('the host has no consumer action');
      target = { kind: 'action', name: action, args: a };
    }
    const c = await backupsApi.run(b.node_id, { op: 'restore', backup_id: b.id, target });
    onStarted(c.id);
  };
  return (
    <Confirm title={`Restore ${b.job} onto ${name}?`} confirmLabel="Restore" onConfirm={go} onCancel={onCancel}>
      <p>
        The backup of {new Date(b.created_ms).toLocaleString()} ({bytes(b.size)}, {b.source}) is streamed back to {name}. A directory or volume restore extracts over the files there (stop the containers that write to a volume first); a consumer action gets the
        artifact as its input. The host's policy decides whether it may.
      </p>
      <div class="form restore-form">
        <label class="field">
          Into
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value as SourceKind)} data-testid="restore-kind">
            <option value="dir">a directory (untar)</option>
            <option value="volume" disabled={!policy?.volumes.length}>
              a container volume (untar)
            </option>
            <option value="action" disabled={!policy?.consumers.length}>
              a consumer action
            </option>
          </select>
        </label>
        {kind === 'dir' ? (
          <label class="field">
            Directory (an existing one under a backup root)
            <input class="mono" value={path} onInput={(e) => setPath(e.currentTarget.value)} spellcheck={false} data-testid="restore-path" />
          </label>
        ) : kind === 'volume' && policy ? (
          <VolumeField policy={policy} testId="restore-volume" value={volume} onInput={setVolume} />
        ) : (
          <>
            <label class="field">
              Consumer action
              <select value={action} onChange={(e) => setAction(e.currentTarget.value)} data-testid="restore-action">
                {policy?.consumers.map((a) => (
                  <option key={a} value={a}>
                    {a}
                  </option>
                ))}
              </select>
            </label>
            <label class="field">
              Arguments (key=value, …)
              <input value={args} onInput={(e) => setArgs(e.currentTarget.value)} spellcheck={false} placeholder="db=app_restored" data-testid="restore-args" />
            </label>
          </>
        )}
      </div>
    </Confirm>
  );
}

type DownloadState = { s: 'idle' } | { s: 'busy'; p: Progress } | { s: 'done'; matched: boolean | null } | { s: 'error'; message: string };

/**
 * Download: the bytes come in with a progress bar and their SHA-256 is
 * checked against the catalog's before the file is saved. Artifacts over
 * IN_PAGE_LIMIT go through the browser's own download (to disk as it comes).
 */
export function DownloadButton({ b }: { b: BackupRecord }) {
  const [st, setSt] = useState<DownloadState>({ s: 'idle' });
  const abort = useRef<AbortController | null>(null);
  useEffect(() => () => abort.current?.abort(), []);
  if (b.size > IN_PAGE_LIMIT)
    return (
      <a class="btn btn-small" href={downloadUrl(b.id)} download data-testid="backup-download">
        Download
      </a>
    );
  const start = async () => {
    const ctl = new AbortController();
    abort.current = ctl;
    setSt({ s: 'busy', p: { received: 0, total: b.size } });
    try {
      let last = 0;
      const { blob, name } = await fetchArtifact(
        b.id,
        (p) => {
          const now = performance.now();
          if (now - last > 100 || p.received === p.total) {
            last = now;
            setSt({ s: 'busy', p });
          }
        },
        ctl.signal,
      );
      const hash = await sha256Hex(blob);
      if (hash != null && hash !== b.sha256) {
        setSt({ s: 'error', message: `the bytes' SHA-256 ${hash.slice(0, 12)}… is not the catalog's: not saved` });
        return;
      }
      saveBlob(blob, name);
      setSt({ s: 'done', matched: hash != null });
    } catch (err) {
      if (ctl.signal.aborted) return setSt({ s: 'idle' });
      setSt({ s: 'error', message: (err as Error).message });
    }
  };
  if (st.s === 'busy') {
    const pct = st.p.total ? Math.round((st.p.received / st.p.total) * 100) : 0;
    return (
      <span class="download-progress" data-testid="download-progress">
        <progress max={st.p.total || 1} value={st.p.received} aria-label={`Downloading ${b.job}`} />
        <small class="num">
          {bytes(st.p.received)} / {bytes(st.p.total)} ({pct}%)
        </small>
        <button type="button" class="btn btn-small btn-ghost" onClick={() => abort.current?.abort()}>
          Stop
        </button>
      </span>
    );
  }
  return (
    <>
      <button type="button" class="btn btn-small" onClick={start} data-testid="backup-download">
        Download
      </button>
      {st.s === 'done' ? (
        <small class="sub" data-testid="download-done" data-matched={String(st.matched)}>
          {st.matched ? 'saved · SHA-256 matches' : 'saved'}
        </small>
      ) : st.s === 'error' ? (
        <small class="sub bad-text" role="alert" data-testid="download-error">
          {st.message}
        </small>
      ) : null}
    </>
  );
}
