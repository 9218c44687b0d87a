// Schedules: commands that run on a cron pattern on a host or a host group
// (docs/schedules.md). The list shows each one's next and last run and
// state; operators create and edit them with a cron helper that shows the next five
// runs in the chosen time zone, enable or disable them, run them now and
// read their run history.

import { useContext, useEffect, useState } from 'preact/hooks';
import { atLeast, RoleContext } from '../access';
import { Badge, Empty, ErrorBox } from '../components/bits';
import { CronField, localZone } from '../components/CronField';
import { parseArgs } from '../commands';
import { ago } from '../format';
import { useLoad } from '../useLoad';
import { bodyOf, inZone, type Schedule, type ScheduleBody, type ScheduleRun, schedulesApi, targetText } from './SchedulesApi';

const RUN_TONE: Record<string, string> = {
  ok: 'ok',
  running: 'warn',
  skipped: 'warn',
  missed: 'bad',
  failed: 'bad',
  refused: 'bad',
  timed_out: 'bad',
  cancelled: 'muted',
  lost: 'bad',
};

/** The action and its arguments of a schedule whose command is an action (what the form edits). */
function actionOf(s: Schedule): { name: string; args: string } | null {
  const c = s.command as { op?: string; name?: string; args?: Record<string, string> };
  if (c.op !== 'action' || typeof c.name !== 'string') return null;
  return { name: c.name, args: Object.entries(c.args || {}).map(([k, v]) => `${k}=${v}`).join(', ') };
}

/** Creates a schedule, or edits `initial` (an action schedule). */
function ScheduleForm({ initial, onSaved, onCancel }: { initial?: Schedule; onSaved: () => void; onCancel?: () => void }) {
  const action = initial ? actionOf(initial) : null;
  const [cron, setCron] = useState(initial?.cron ?? '30 2 * * *');
  const [timezone, setTimezone] = useState(initial?.timezone ?? localZone());
  const [kind, setKind] = useState<'group' | 'node'>(initial && 'node' in initial.target ? 'node' : 'group');
  const [overlap, setOverlap] = useState<string>(initial?.overlap ?? 'forbid');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const target0 = initial ? ('node' in initial.target ? initial.target.node : initial.target.group) : '';
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const target = String(data.get('target') || '').trim();
    const args = parseArgs(String(data.get('args') || ''));
    if (typeof args === 'string') return setError(args);
    const body: ScheduleBody = {
      name: String(data.get('name') || '').trim(),
      cron,
      timezone,
      target: kind === 'node' ? { node: target } : { group: target },
      command: { op: 'action', name: String(data.get('action') || '').trim(), args },
      enabled: initial ? initial.enabled : true,
      overlap,
      jitter_secs: Number(data.get('jitter') || 0),
      grace_secs: initial?.grace_secs ?? null,
    };
    setBusy(true);
    setError('');
    try {
      if (initial) await schedulesApi.update(initial.id, body);
      else await schedulesApi.create(body);
      if (!initial) form.reset();
      onSaved();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const id = initial ? `-${initial.id}` : '';
  return (
    <form class="form schedule-form" onSubmit={submit} noValidate data-testid={initial ? 'schedule-edit-form' : 'schedule-form'}>
      <h2>{initial ? `Edit ${initial.name}` : 'New schedule'}</h2>
      <label class="field">
        Name
        <input name="name" required maxLength={100} placeholder="nightly dump" defaultValue={initial?.name} data-testid={`schedule-name${id}`} />
      </label>
      <CronField cron={cron} timezone={timezone} onCron={setCron} onTimezone={setTimezone} testId="schedule" suffix={id} />
      <div class="form form-row">
        <label class="field">
          Runs on
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value as 'group' | 'node')} data-testid={`schedule-target-kind${id}`}>
            <option value="group">a host group</option>
            <option value="node">one host</option>
          </select>
        </label>
        <label class="field">
          {kind === 'group' ? 'Group (key=value)' : 'Node id'}
          <input name="target" required spellcheck={false} placeholder={kind === 'group' ? 'role=db' : 'n_…'} defaultValue={target0} data-testid={`schedule-target${id}`} />
        </label>
      </div>
      <div class="form form-row">
        <label class="field">
          Action (from the hosts' policy)
          <input name="action" required spellcheck={false} defaultValue={action?.name} data-testid={`schedule-action${id}`} />
        </label>
        <label class="field">
          Arguments (key=value, …)
          <input name="args" spellcheck={false} defaultValue={action?.args} data-testid={`schedule-args${id}`} />
        </label>
      </div>
      <div class="form form-row">
        <label class="field">
          If the last run still runs
          <select name="overlap" value={overlap} onChange={(e) => setOverlap(e.currentTarget.value)} data-testid={`schedule-overlap${id}`}>
            <option value="forbid">skip this run</option>
            <option value="allow">run beside it</option>
            <option value="replace">cancel it, then run</option>
          </select>
        </label>
        <label class="field">
          Jitter (seconds, per host)
          <input name="jitter" type="number" min={0} max={3600} defaultValue={String(initial?.jitter_secs ?? 0)} data-testid={`schedule-jitter${id}`} />
        </label>
      </div>
      {error ? (
        <p class="form-error" role="alert" data-testid="schedule-error">
          {error}
        </p>
      ) : null}
      <div>
        <button class="btn btn-primary" type="submit" disabled={busy} data-testid={`schedule-submit${id}`}>
          {busy ? 'Saving…' : initial ? 'Save' : 'Create schedule'}
        </button>{' '}
        {onCancel ? (
          <button class="btn" type="button" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
      </div>
    </form>
  );
}

function RunHistory({ schedule, version }: { schedule: Schedule; version: number }) {
  const runs = useLoad<ScheduleRun[]>(() => schedulesApi.runs(schedule.id), [schedule.id, version]);
  // Runs in flight end on their own: look again while any runs.
  useEffect(() => {
    if (!runs.data?.some((r) => r.status === 'running')) return;
    const t = setTimeout(runs.reload, 1500);
    return () => clearTimeout(t);
  }, [runs.data]);
  if (runs.error) return <ErrorBox message={runs.error} retry={runs.reload} />;
  if (!runs.data) return <p class="muted">Loading runs…</p>;
  if (runs.data.length === 0) return <p class="muted" data-testid="runs-empty">No runs yet.</p>;
  return (
    <table class="simple" aria-label={`Runs of ${schedule.name}`} data-testid="runs-table">
      <thead>
        <tr>
          <th scope="col">Slot</th>
          <th scope="col">Host</th>
          <th scope="col">How</th>
          <th scope="col">Outcome</th>
          <th scope="col">Command</th>
        </tr>
      </thead>
      <tbody>
        {runs.data.map((r) => (
          <tr key={r.id} data-testid="run-row" data-status={r.status} data-trigger={r.trigger}>
            <td class="nowrap">{inZone(r.slot_ms, schedule.timezone)}</td>
            <td class="mono">{r.node_id}</td>
            <td>{r.trigger === 'catch_up' ? 'catch-up' : r.trigger === 'manual' ? 'by hand' : 'on time'}</td>
            <td>
              <Badge text={r.status} tone={RUN_TONE[r.status] || 'muted'} />
              {r.reason ? <small class="sub">{r.reason}</small> : null}
            </td>
            <td class="mono">{r.command_id || '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function ScheduleRow({ s, canEdit, onChanged }: { s: Schedule; canEdit: boolean; onChanged: () => void }) {
  const [open, setOpen] = useState(false);
  const [editing, setEditing] = useState(false);
  const [version, setVersion] = useState(0);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const act = async (what: () => Promise<unknown>) => {
    setBusy(true);
    setError('');
    try {
      await what();
      setVersion((v) => v + 1);
      onChanged();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const state = s.schedule_error ? <Badge text="error" tone="bad" /> : s.enabled ? <Badge text="enabled" tone="ok" /> : <Badge text="disabled" tone="muted" />;
  return (
    <>
      <tr data-testid="schedule-row" data-name={s.name} data-enabled={String(s.enabled)}>
        <td>
          <strong>{s.name}</strong>
          <small class="sub">{targetText(s.target)}</small>
        </td>
        <td>
          <span class="mono">{s.cron}</span>
          <small class="sub">{s.timezone}</small>
        </td>
        <td data-testid="schedule-next">{s.next_run_ms ? inZone(s.next_run_ms, s.timezone) : '—'}</td>
        <td data-testid="schedule-last">{s.last_run_ms ? ago(s.last_run_ms) : 'never'}</td>
        <td data-testid="schedule-state" data-outcome={s.last_outcome ?? ''}>
          {state}
          {s.last_outcome ? (
            <>
              {' '}
              <Badge text={`last: ${s.last_outcome.replace('_', ' ')}`} tone={RUN_TONE[s.last_outcome] || 'muted'} />
            </>
          ) : null}
          {s.schedule_error ? <small class="sub">{s.schedule_error}</small> : null}
        </td>
        <td class="nowrap">
          <button class="btn btn-small" type="button" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="schedule-runs">
            Runs
          </button>{' '}
          {canEdit ? (
            <>
              <button class="btn btn-small" type="button" disabled={busy} onClick={() => act(() => schedulesApi.runNow(s.id)).then(() => setOpen(true))} data-testid="schedule-run-now">
                Run now
              </button>{' '}
              <button class="btn btn-small" type="button" disabled={busy} onClick={() => act(() => schedulesApi.update(s.id, { ...bodyOf(s), enabled: !s.enabled }))} data-testid="schedule-toggle">
                {s.enabled ? 'Disable' : 'Enable'}
              </button>{' '}
              {actionOf(s) ? (
                <>
                  <button class="btn btn-small" type="button" aria-expanded={editing} onClick={() => setEditing(!editing)} data-testid="schedule-edit">
                    Edit
                  </button>{' '}
                </>
              ) : null}
              <button
                class="btn btn-small btn-danger-outline"
                type="button"
                disabled={busy}
                onClick={() => confirm(`Delete the schedule ${s.name} and its run history?`) && act(() => schedulesApi.remove(s.id))}
                data-testid="schedule-delete"
              >
                Delete
              </button>
            </>
          ) : null}
        </td>
      </tr>
      {error ? (
        <tr>
          <td colSpan={6}>
            <p class="form-error" role="alert">
              {error}
            </p>
          </td>
        </tr>
      ) : null}
      {editing ? (
        <tr>
          <td colSpan={6}>
            <ScheduleForm
              initial={s}
              onSaved={() => {
                setEditing(false);
                onChanged();
              }}
              onCancel={() => setEditing(false)}
            />
          </td>
        </tr>
      ) : null}
      {open ? (
        <tr>
          <td colSpan={6}>
            <RunHistory schedule={s} version={version} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

export function Schedules() {
  const role = useContext(RoleContext);
  const canEdit = atLeast(role, 'operator');
  const list = useLoad<Schedule[]>(() => schedulesApi.list(), []);
  const all = list.data || [];
  // A run in flight ends on its own: look again while any schedule's latest slot runs,
  // so its state and last run follow without a reload.
  useEffect(() => {
    if (!list.data?.some((s) => s.last_outcome === 'running')) return;
    const t = setTimeout(list.reload, 1500);
    return () => clearTimeout(t);
  }, [list.data]);
  const failing = all.filter((s) => s.schedule_error || (s.last_outcome && !['ok', 'running'].includes(s.last_outcome))).length;
  return (
    <section class="screen" aria-labelledby="schedules-title">
      <div class="screen-head">
        <h1 id="schedules-title">Schedules</h1>
        <span class="muted" data-testid="schedules-count">
          {all.length} schedule{all.length === 1 ? '' : 's'}
          {failing ? ` · ${failing} failing` : ''}
        </span>
      </div>
      {list.error ? (
        <ErrorBox message={list.error} retry={list.reload} />
      ) : !list.data ? (
        <p class="muted">Loading…</p>
      ) : all.length === 0 ? (
        <Empty title="No schedules yet" testId="schedules-empty">
          A schedule runs an action of the hosts' policy on a cron pattern, on one host or every host of a group, and keeps a record of each run.
        </Empty>
      ) : (
        <div class="panel table-scroll">
          <table class="simple" aria-label="Schedules" data-testid="schedules-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">When</th>
                <th scope="col">Next run</th>
                <th scope="col">Last run</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {all.map((s) => (
                <ScheduleRow key={s.id} s={s} canEdit={canEdit} onChanged={list.reload} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {canEdit ? (
        <div class="panel">
          <ScheduleForm onSaved={list.reload} />
        </div>
      ) : null}
    </section>
  );
}
