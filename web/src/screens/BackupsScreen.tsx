// Backups (docs/backups.md): the catalog of artifacts the hosts produced,
// filtered by host, job, state, time, size and hash; download (with a
// progress bar and a SHA-256 check), verify and restore (operator, behind a
// confirmation), prune by the jobs' retention; the backup schedules and the
// recent backup and restore runs, failures first and loud. Loaded on first
// use (Backups.tsx), like the network map.

import { useContext, useEffect, useMemo, useState } from 'preact/hooks';
import { atLeast, RoleContext } from '../access';
import { Confirm } from '../components/Confirm';
import { Badge, Empty, ErrorBox, FilterChips } from '../components/bits';
import { ago, bytes } from '../format';
import { hostUrl, Link, setQuery } from '../router';
import { fleet } from '../store';
import type { RowHost } from '../store';
import type { CommandRecord } from '../types';
import { useFleet } from '../useFleet';
import { useLoad } from '../useLoad';
import { type BackupRecord, backupPolicy, backupsApi, FAILED, isBackupRun, type PruneReport } from './BackupsApi';
import { DownloadButton, NewBackup, RestoreDialog } from './BackupsForms';
import { inZone, type Schedule, schedulesApi, targetText } from './SchedulesApi';

const SINCE: Record<string, number> = { '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 };
const MIN_SIZE: Record<string, number> = { '1mib': 2 ** 20, '100mib': 100 * 2 ** 20, '1gib': 2 ** 30 };
const SORTS = ['newest', 'oldest', 'largest', 'smallest'] as const;
const STATES = ['all', 'complete', 'corrupt'];
/** Hosts whose command history is read for runs (the stream brings the rest live). */
const RUN_HOSTS = 25;
const RUNS_SHOWN = 30;
/** A failed run this recent is named at the top of the screen. */
const LOUD_MS = 7 * 86_400_000;

const RUN_TONE: Record<string, string> = { ok: 'ok', running: 'warn', failed: 'bad', refused: 'bad', timed_out: 'bad', cancelled: 'muted', lost: 'bad' };

function matches(b: BackupRecord, q: string): boolean {
  if (!q) return true;
  return b.sha256.startsWith(q) || b.id.toLowerCase().includes(q) || b.source.toLowerCase().includes(q) || b.job.toLowerCase().includes(q);
}

function sortBy(sort: string): (a: BackupRecord, b: BackupRecord) => number {
  switch (sort) {
    case 'oldest':
      return (a, b) => a.created_ms - b.created_ms;
    case 'largest':
      return (a, b) => b.size - a.size || b.created_ms - a.created_ms;
    case 'smallest':
      return (a, b) => a.size - b.size || b.created_ms - a.created_ms;
    default:
      return (a, b) => b.created_ms - a.created_ms;
  }
}

const isBackupSchedule = (s: Schedule) => (s.command as { op?: string }).op === 'backup';
const scheduleFailing = (s: Schedule) => !!s.schedule_error || (!!s.last_outcome && !['ok', 'running'].includes(s.last_outcome));

/** The backup and restore runs of `nodes`: their stored history once, then the stream's live commands. */
function useRuns(nodes: string[], gen: number): { runs: CommandRecord[]; error: string } {
  const f = useFleet();
  const [read, setRead] = useState<CommandRecord[]>([]);
  const [error, setError] = useState('');
  const key = nodes.join(',');
  useEffect(() => {
    let live = true;
    Promise.all(nodes.slice(0, RUN_HOSTS).map((n) => backupsApi.nodeCommands(n, 100))).then(
      (lists) => {
        if (!live) return;
        setRead(lists.flat().filter(isBackupRun));
        setError('');
      },
      (e) => live && setError((e as Error).message),
    );
    return () => {
      live = false;
    };
  }, [key, gen, f.snapshots]);
  const wanted = new Set(nodes);
  const byId = new Map(read.map((r) => [r.id, r]));
  for (const c of f.liveCommands.values()) if (wanted.has(c.node_id) && isBackupRun(c)) byId.set(c.id, c);
  return { runs: [...byId.values()].sort((a, b) => b.started_ms - a.started_ms), error };
}

function Failures({ runs, schedules, names }: { runs: CommandRecord[]; schedules: Schedule[]; names: Map<string, string> }) {
  const now = Date.now();
  const failedRuns = runs.filter((r) => FAILED.has(r.status) && now - r.started_ms < LOUD_MS);
  const failing = schedules.filter(scheduleFailing);
  if (failedRuns.length === 0 && failing.length === 0) return null;
  return (
    <div class="error-box backup-failures" role="alert" data-testid="backup-failures" data-count={failedRuns.length + failing.length}>
      <strong>
        {failedRuns.length ? `${failedRuns.length} backup or restore run${failedRuns.length === 1 ? '' : 's'} failed in the last 7 days` : ''}
        {failedRuns.length && failing.length ? ' · ' : ''}
        {failing.length ? `${failing.length} backup schedule${failing.length === 1 ? '' : 's'} failing` : ''}
      </strong>
      <ul class="attn-list">
        {failing.slice(0, 5).map((s) => (
          <li key={`s${s.id}`}>
            <Badge text={s.schedule_error ? 'error' : (s.last_outcome || '').replace('_', ' ')} tone="bad" />
            <Link href="/schedules">{s.name}</Link>
            <span class="muted">{s.schedule_error || `last run ${s.last_run_ms ? ago(s.last_run_ms) : 'never'}`}</span>
          </li>
        ))}
        {failedRuns.slice(0, 5).map((r) => (
          <li key={r.id}>
            <Badge text={r.status.replace('_', ' ')} tone="bad" />
            <Link href={hostUrl(r.node_id, 'commands')}>{names.get(r.node_id) || r.node_id}</Link>
            <span class="muted">
              {r.summary}: {r.error || (r.exit_code != null ? `exit code ${r.exit_code}` : 'no reason given')} · {ago(r.started_ms)}
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function BackupSchedules({ list, canEdit, names, onChanged }: { list: Schedule[]; canEdit: boolean; names: Map<string, string>; onChanged: () => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(0);
  if (list.length === 0) return null;
  const runNow = async (s: Schedule) => {
    setBusy(s.id);
    setError('');
    try {
      await schedulesApi.runNow(s.id);
      onChanged();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(0);
    }
  };
  const target = (s: Schedule) => ('node' in s.target ? names.get(s.target.node) || s.target.node : targetText(s.target));
  return (
    <div class="panel table-scroll">
      <h2>
        Backup schedules <Link href="/schedules" class="more">all schedules →</Link>
      </h2>
      {error ? (
        <p class="form-error" role="alert">
          {error}
        </p>
      ) : null}
      <table class="simple cards" aria-label="Backup schedules" data-testid="backup-schedules">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">When</th>
            <th scope="col">Next run</th>
            <th scope="col">Last run</th>
            {canEdit ? (
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>
          {list.map((s) => (
            <tr key={s.id} class={scheduleFailing(s) ? 'is-bad' : undefined} data-testid="backup-schedule-row" data-name={s.name} data-outcome={s.last_outcome ?? ''}>
              <td>
                <strong>{s.name}</strong>
                <small class="sub">
                  {(s.command as { job?: string }).job} on {target(s)}
                </small>
              </td>
              <td data-label="cron">
                <span class="mono">{s.cron}</span>
                <small class="sub">{s.timezone}</small>
              </td>
              <td data-label="next" data-testid="backup-schedule-next">
                {s.enabled ? (s.next_run_ms ? inZone(s.next_run_ms, s.timezone) : '—') : 'disabled'}
              </td>
              <td data-label="last">
                {s.last_run_ms ? ago(s.last_run_ms) : 'never'}
                {s.last_outcome ? (
                  <>
                    {' '}
                    <Badge text={s.last_outcome.replace('_', ' ')} tone={RUN_TONE[s.last_outcome] || 'bad'} />
                  </>
                ) : null}
                {s.schedule_error ? <small class="sub">{s.schedule_error}</small> : null}
              </td>
              {canEdit ? (
                <td class="bk-actions">
                  <button type="button" class="btn btn-small" disabled={busy === s.id} onClick={() => runNow(s)} data-testid="backup-schedule-run">
                    Run now
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Runs({ runs, names }: { runs: CommandRecord[]; names: Map<string, string> }) {
  return (
    <div class="panel table-scroll">
      <h2>Recent backup and restore runs</h2>
      {runs.length === 0 ? (
        <p class="muted" data-testid="backup-runs-empty">
          No runs yet.
        </p>
      ) : (
        <table class="simple cards" aria-label="Backup and restore runs" data-testid="backup-runs">
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Host</th>
              <th scope="col">What</th>
              <th scope="col">By</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {runs.slice(0, RUNS_SHOWN).map((r) => (
              <tr key={r.id} class={FAILED.has(r.status) ? 'is-bad' : undefined} data-testid="backup-run-row" data-status={r.status} data-op={(r.op as { op?: string }).op} data-command={r.id}>
                <td class="nowrap" title={new Date(r.started_ms).toLocaleString()}>
                  {ago(r.started_ms)}
                </td>
                <td data-label="on">
                  <Link href={hostUrl(r.node_id, 'commands')}>{names.get(r.node_id) || r.node_id}</Link>
                </td>
                <td>
                  <span class="mono">{r.summary}</span>
                </td>
                <td data-label="by">{r.actor}</td>
                <td>
                  <Badge text={r.status.replace('_', ' ')} tone={RUN_TONE[r.status] || 'muted'} />
                  {r.duration_ms != null ? <small class="muted"> {(r.duration_ms / 1000).toFixed(1)} s</small> : null}
                  {r.error ? <small class="sub bad-text">{r.error}</small> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function BackupRow({ b, host, canOperate, onVerified, onRestore }: { b: BackupRecord; host: RowHost | undefined; canOperate: boolean; onVerified: () => void; onRestore: (b: BackupRecord) => void }) {
  const [verify, setVerify] = useState<{ busy: boolean; message: string; ok?: boolean }>({ busy: false, message: '' });
  const policy = backupPolicy(host);
  const canRestore = canOperate && atLeast(useContext(RoleContext), policy?.role ?? 'operator');
  const runVerify = async () => {
    setVerify({ busy: true, message: '' });
    try {
      const r = await backupsApi.verify(b.id);
      setVerify({ busy: false, ok: r.ok, message: r.ok ? 'SHA-256 matches' : `read ${r.sha256_actual.slice(0, 12)}…, ${bytes(r.size_actual)}: corrupt` });
      onVerified();
    } catch (e) {
      setVerify({ busy: false, ok: false, message: (e as Error).message });
    }
  };
  const corrupt = b.status !== 'complete';
  return (
    <tr class={corrupt ? 'is-bad' : undefined} data-testid="backup-row" data-id={b.id} data-job={b.job} data-node={b.node_id} data-sha256={b.sha256} data-size={b.size} data-status={b.status}>
      <td class="nowrap" title={new Date(b.created_ms).toLocaleString()}>
        {new Date(b.created_ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}
        <small class="sub">{ago(b.created_ms)}</small>
      </td>
      <td data-label="host">
        <Link href={hostUrl(b.node_id)}>{host?.hostname || b.node_id}</Link>
      </td>
      <td data-label="job">
        <strong>{b.job}</strong>
        <small class="sub mono">{b.source}</small>
      </td>
      <td class="num">{bytes(b.size)}</td>
      <td data-label="sha256">
        <code class="sha" title={b.sha256}>
          {b.sha256.slice(0, 12)}…
        </code>
      </td>
      <td>
        <Badge text={b.status} tone={corrupt ? 'bad' : 'ok'} />
        {b.verified_ms ? <small class="sub">verified {ago(b.verified_ms)}</small> : null}
        {b.retention ? <small class="sub">{b.retention}</small> : null}
      </td>
      {canOperate ? (
        <td class="bk-actions">
          <DownloadButton b={b} />
          <button type="button" class="btn btn-small" disabled={verify.busy} onClick={runVerify} data-testid="backup-verify">
            {verify.busy ? 'Verifying…' : 'Verify'}
          </button>
          {canRestore && !corrupt ? (
            <button type="button" class="btn btn-small btn-danger-outline" onClick={() => onRestore(b)} data-testid="backup-restore">
              Restore…
            </button>
          ) : null}
          {verify.message ? (
            <small class={`sub${verify.ok ? '' : ' bad-text'}`} role="status" data-testid="verify-result" data-ok={String(!!verify.ok)}>
              {verify.message}
            </small>
          ) : null}
        </td>
      ) : null}
    </tr>
  );
}

function PruneResult({ reports }: { reports: PruneReport[] }) {
  const removed = reports.reduce((n, r) => n + r.removed.length, 0);
  return (
    <div class="hint" role="status" data-testid="prune-result" data-removed={removed}>
      {reports.length === 0
        ? 'No job to prune.'
        : reports.map((r) => (
            <p key={`${r.node_id}/${r.job}`}>
              <strong>{r.job}</strong> ({r.rules || 'keep all'}): kept {r.kept.length}, removed {r.removed.length}
              {r.removed.length ? `: ${r.removed.map((d) => d.id).join(', ')}` : ''}
            </p>
          ))}
    </div>
  );
}

export function BackupsScreen({ query }: { query: URLSearchParams }) {
  const f = useFleet();
  const role = useContext(RoleContext);
  const canOperate = atLeast(role, 'operator');
  const [gen, setGen] = useState(0);
  const catalog = useLoad<BackupRecord[]>(() => backupsApi.list(), [gen]);
  const schedules = useLoad<Schedule[]>(() => schedulesApi.list(), [gen]);
  const [restoring, setRestoring] = useState<BackupRecord | null>(null);
  const [pruning, setPruning] = useState(false);
  const [pruned, setPruned] = useState<PruneReport[] | null>(null);
  const [notice, setNotice] = useState('');

  const nodes = f.list();
  const names = useMemo(() => new Map(nodes.map((n) => [n.id, n.hostname])), [nodes]);
  const all = catalog.data || [];
  const backupSchedules = (schedules.data || []).filter(isBackupSchedule);
  const producers = nodes.filter((n) => backupPolicy(n));
  // Whose runs to show: hosts with backups, with backup schedules, or able to make one.
  const runHosts = useMemo(() => {
    const s = new Set<string>(all.map((b) => b.node_id));
    for (const sc of backupSchedules) if ('node' in sc.target) s.add(sc.target.node);
    for (const n of producers) s.add(n.id);
    return [...s].sort();
  }, [catalog.data, schedules.data, producers.length]);
  const { runs, error: runsError } = useRuns(runHosts, gen);

  // A run that ends brings its artifact (or the prune after it): read the catalog again.
  const ended = runs.filter((r) => r.status !== 'running').length;
  const running = runs.some((r) => r.status === 'running');
  useEffect(() => {
    if (ended) catalog.reload();
  }, [ended]);
  useEffect(() => {
    if (!running) return;
    const t = setTimeout(() => schedules.reload(), 2000);
    return () => clearTimeout(t);
  }, [running, ended]);

  const host = query.get('host') || '';
  const job = query.get('job') || '';
  const state = STATES.includes(query.get('state') || '') ? (query.get('state') as string) : 'all';
  const since = query.get('since') || '';
  const minSize = query.get('size') || '';
  const sort = (SORTS as readonly string[]).includes(query.get('sort') || '') ? (query.get('sort') as string) : 'newest';
  const q = (query.get('q') || '').trim().toLowerCase();
  const now = Date.now();
  const jobs = [...new Set(all.filter((b) => !host || b.node_id === host).map((b) => b.job))].sort();
  const hostsWithBackups = [...new Set(all.map((b) => b.node_id))].sort((a, b) => (names.get(a) || a).localeCompare(names.get(b) || b));
  const base = all.filter(
    (b) =>
      (!host || b.node_id === host) &&
      (!job || b.job === job) &&
      (!SINCE[since] || now - b.created_ms <= SINCE[since]) &&
      (!MIN_SIZE[minSize] || b.size >= MIN_SIZE[minSize]) &&
      matches(b, q),
  );
  const counts = { all: base.length, complete: base.filter((b) => b.status === 'complete').length, corrupt: base.filter((b) => b.status !== 'complete').length };
  const rows = base.filter((b) => state === 'all' || (state === 'complete' ? b.status === 'complete' : b.status !== 'complete')).sort(sortBy(sort));
  const total = rows.reduce((n, b) => n + b.size, 0);

  const reloadAll = () => setGen((g) => g + 1);
  const started = (id: string, what: string) => {
    setNotice(`${what} started (${id}); it shows under the runs below.`);
    reloadAll();
  };

  return (
    <section class="screen backups" aria-labelledby="backups-title">
      <div class="screen-head">
        <h1 id="backups-title">Backups</h1>
        <span class="muted" data-testid="backups-count">
          {rows.length === all.length ? `${all.length} backup${all.length === 1 ? '' : 's'}` : `${rows.length} of ${all.length} backups`} · {bytes(total)}
          {counts.corrupt ? ` · ${counts.corrupt} corrupt` : ''}
        </span>
      </div>
      <Failures runs={runs} schedules={backupSchedules} names={names} />
      {notice ? (
        <p class="form-notice" role="status" data-testid="backups-notice">
          {notice}
        </p>
      ) : null}
      <div class="toolbar" role="search">
        <input type="search" placeholder="Search SHA-256, id, source…  ( / )" aria-label="Search backups" value={query.get('q') || ''} onInput={(e) => setQuery({ q: e.currentTarget.value })} data-testid="backup-search" />
        <label class="inline-field">
          Host{' '}
          <select value={host} onChange={(e) => setQuery({ host: e.currentTarget.value, job: null })} data-testid="backup-filter-host">
            <option value="">every host</option>
            {hostsWithBackups.map((id) => (
              <option key={id} value={id}>
                {names.get(id) || id}
              </option>
            ))}
          </select>
        </label>
        <label class="inline-field">
          Job{' '}
          <select value={job} onChange={(e) => setQuery({ job: e.currentTarget.value })} data-testid="backup-filter-job">
            <option value="">every job</option>
            {jobs.map((j) => (
              <option key={j} value={j}>
                {j}
              </option>
            ))}
          </select>
        </label>
        <label class="inline-field">
          Made{' '}
          <select value={since} onChange={(e) => setQuery({ since: e.currentTarget.value })} data-testid="backup-filter-since">
            <option value="">any time</option>
            <option value="24h">in the last 24 h</option>
            <option value="7d">in the last 7 days</option>
            <option value="30d">in the last 30 days</option>
          </select>
        </label>
        <label class="inline-field">
          Size{' '}
          <select value={minSize} onChange={(e) => setQuery({ size: e.currentTarget.value })} data-testid="backup-filter-size">
            <option value="">any size</option>
            <option value="1mib">1 MiB or more</option>
            <option value="100mib">100 MiB or more</option>
            <option value="1gib">1 GiB or more</option>
          </select>
        </label>
        <label class="inline-field">
          Sort{' '}
          <select value={sort} onChange={(e) => setQuery({ sort: e.currentTarget.value === 'newest' ? null : e.currentTarget.value })} data-testid="backup-sort">
            {SORTS.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <FilterChips label="State" param="state" options={STATES} value={state} counts={counts} testId={(k) => `backup-state-${k}`} />
        {canOperate && all.length ? (
          <button type="button" class="btn btn-small" onClick={() => setPruning(true)} data-testid="backup-prune">
            Prune{host || job ? ' these' : ''}…
          </button>
        ) : null}
      </div>
      {pruned ? <PruneResult reports={pruned} /> : null}
      {catalog.error ? (
        <ErrorBox message={catalog.error} retry={catalog.reload} />
      ) : !catalog.data ? (
        <p class="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <Empty title={all.length === 0 ? 'No backups yet' : 'No backup matches'} testId="backups-empty">
          {all.length === 0
            ? "A backup is a tar of a directory under a host's backup roots, or a producer action's output (a database dump), streamed zstd-compressed to the hub's store. Give a host a `backup` section or a producer action in its policy, then back it up below or on a schedule."
            : 'Change the search or the filters.'}
        </Empty>
      ) : (
        <div class="panel table-scroll">
          <table class="simple cards backups-table" aria-label="Backups" data-testid="backups-table">
            <thead>
              <tr>
                <th scope="col">Made</th>
                <th scope="col">Host</th>
                <th scope="col">Job</th>
                <th scope="col">Size</th>
                <th scope="col">SHA-256</th>
                <th scope="col">State</th>
                {canOperate ? (
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {rows.map((b) => (
                <BackupRow key={b.id} b={b} host={fleet.nodes.get(b.node_id)} canOperate={canOperate} onVerified={catalog.reload} onRestore={setRestoring} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {schedules.error ? <ErrorBox message={schedules.error} retry={schedules.reload} /> : <BackupSchedules list={backupSchedules} canEdit={canOperate} names={names} onChanged={reloadAll} />}
      {runsError ? <ErrorBox message={runsError} retry={reloadAll} /> : <Runs runs={runs} names={names} />}
      {canOperate && producers.length ? (
        <div class="panel">
          <NewBackup hosts={producers} onStarted={(id) => started(id, 'Backup')} onScheduled={reloadAll} />
        </div>
      ) : null}
      {restoring ? (
        <RestoreDialog
          b={restoring}
          host={fleet.nodes.get(restoring.node_id)}
          onCancel={() => setRestoring(null)}
          onStarted={(id) => {
            setRestoring(null);
            started(id, 'Restore');
          }}
        />
      ) : null}
      {pruning ? (
        <Confirm
          title={host || job ? 'Prune these backups?' : 'Prune every job?'}
          confirmLabel="Prune"
          onCancel={() => setPruning(false)}
          onConfirm={async () => {
            const r = await backupsApi.prune(host || undefined, job || undefined);
            setPruned(r);
            setPruning(false);
            catalog.reload();
          }}
        >
          Each job's retention rules are applied now{host ? ` on ${names.get(host) || host}` : ''}
          {job ? ` to ${job}` : ''}: what no rule keeps is deleted from storage (the newest backup of a job always stays).
        </Confirm>
      ) : null}
    </section>
  );
}
