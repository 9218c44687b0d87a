// The Updates screen (docs/updates.md): the hub itself (HubPanel: version,
// store, agents connected, replicas), the published releases, the fleet's
// agent versions, starting a rollout (admins), the rollouts and one rollout
// followed live (the stream's `rollout` frames; polled every 2 s while the
// hub does not send them), with pause, resume and abort.

import { useContext, useEffect, useState } from 'preact/hooks';
import { can, RoleContext } from '../access';
import { ApiError } from '../api';
import { Badge, Dot, Empty, ErrorBox } from '../components/bits';
import { Confirm } from '../components/Confirm';
import { ago, bytes, clock, dateTime, durationMs } from '../format';
import { hostUrl, Link, screenHref, setQuery } from '../router';
import { fleet } from '../store';
import type { Release, Rollout, RolloutRequest, RolloutTarget } from '../types';
import { useFleet } from '../useFleet';
import { useLoad } from '../useLoad';
import { HubPanel } from './HubPanel';
import {
  HOST_STATE,
  isSimulated,
  newer,
  parseBatch,
  parseCount,
  parseGroup,
  parsePause,
  ROLLOUT_TONE,
  rolloutActive,
  short,
  targetText,
  updatesApi,
  versionCounts,
} from './UpdatesApi';

const POLL_MS = 2000;

// ---- The fleet's versions -----------------------------------------------------

function FleetVersions({ selected }: { selected: string | null }) {
  const nodes = fleet.list();
  const counts = fleet.derive('versions', () => versionCounts(nodes));
  if (!fleet.loaded) return <p class="muted">Loading the fleet…</p>;
  const total = nodes.length;
  const open = selected != null ? counts.find((c) => c.version === selected) : undefined;
  return (
    <div class="panel" data-testid="fleet-versions">
      <div class="panel-head">
        <h2>Agent versions</h2>
        <span class="muted small">
          {total} host{total === 1 ? '' : 's'}
        </span>
      </div>
      {total === 0 ? (
        <p class="muted">No hosts yet.</p>
      ) : (
        <>
          <div class="version-bar" aria-hidden="true">
            {counts.map((c, i) => (
              <span key={c.version} class={`vb-${i % 6}`} style={{ width: `${(100 * c.hosts.length) / total}%` }} />
            ))}
          </div>
          <ul class="version-list">
            {counts.map((c, i) => (
              <li key={c.version} data-testid="version-row" data-version={c.version} data-count={c.hosts.length}>
                <span class={`swatch vb-${i % 6}`} aria-hidden="true" />
                <button
                  type="button"
                  class="linkish"
                  aria-expanded={open?.version === c.version}
                  onClick={() => setQuery({ version: open?.version === c.version ? null : c.version })}
                  data-testid="version-open"
                >
                  <strong class="num">{c.hosts.length}</strong> host{c.hosts.length === 1 ? '' : 's'} on <span class="mono">{c.version || 'an unknown version'}</span>
                </button>
                {c.simulated > 0 && <span class="muted small"> ({c.simulated} simulated)</span>}
              </li>
            ))}
          </ul>
          {open && (
            <ul class="version-hosts" aria-label={`Hosts on ${open.version || 'an unknown version'}`} data-testid="version-hosts">
              {open.hosts.slice(0, 200).map((n) => (
                <li key={n.id} data-testid="version-host" data-node-id={n.id}>
                  <Dot up={n.connected} label={n.connected ? 'connected' : 'disconnected'} /> <Link href={hostUrl(n.id, 'agent')}>{n.hostname}</Link>
                  {isSimulated(n) && <Badge text="simulated" tone="muted" />}
                </li>
              ))}
              {open.hosts.length > 200 && <li class="muted">and {open.hosts.length - 200} more</li>}
            </ul>
          )}
        </>
      )}
    </div>
  );
}

// ---- Releases -----------------------------------------------------------------

function Releases({ list, error, reload }: { list: Release[] | null; error: string; reload: () => void }) {
  return (
    <div class="panel" data-testid="releases">
      <div class="panel-head">
        <h2>Releases</h2>
      </div>
      {error ? (
        <ErrorBox message={error} retry={reload} />
      ) : !list ? (
        <p class="muted">Loading…</p>
      ) : list.length === 0 ? (
        <Empty title="No releases yet" testId="releases-empty">
          Publish one with <code>twinbay ctl release publish --file twinbay --version 1.4.0 --key minisign.key</code> on a hub started with{' '}
          <code>--update-key</code>.
        </Empty>
      ) : (
        <div class="table-scroll" tabIndex={0} role="region" aria-label="Releases">
          <table class="simple cards">
            <thead>
              <tr>
                <th>Version</th>
                <th>Arch</th>
                <th>Size</th>
                <th>SHA-256</th>
                <th>Signed by</th>
                <th>Published</th>
              </tr>
            </thead>
            <tbody>
              {list.map((r) => (
                <tr key={`${r.version}/${r.arch}`} data-testid="release-row" data-version={r.version} data-arch={r.arch}>
                  <td>
                    <strong class="mono">{r.version}</strong>
                    {r.notes && <small class="sub" data-testid="release-notes">{r.notes}</small>}
                  </td>
                  <td data-label="arch">{r.arch}</td>
                  <td class="num" data-label="size">
                    {bytes(r.size)}
                  </td>
                  <td class="mono" data-label="sha-256" title={r.sha256} data-testid="release-sha">
                    {short(r.sha256)}
                  </td>
                  <td class="mono" data-label="key" title={r.key} data-testid="release-key">
                    {short(r.key)}
                  </td>
                  <td class="nowrap" data-label="published">
                    <span title={dateTime(r.published_ms)}>{ago(r.published_ms)}</span>
                    <small class="sub">by {r.published_by}</small>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

// ---- Starting a rollout --------------------------------------------------------

type TargetKind = 'all' | 'group' | 'nodes';

function StartRollout({ releases, onStarted }: { releases: Release[]; onStarted: (r: Rollout) => void }) {
  const versions = [...new Set(releases.map((r) => r.version))];
  const [version, setVersion] = useState(versions[0] ?? '');
  const [kind, setKind] = useState<TargetKind>('all');
  const [group, setGroup] = useState('');
  const [chosen, setChosen] = useState<string[]>([]);
  const [canaries, setCanaries] = useState('1');
  const [batch, setBatch] = useState('25%');
  const [pause, setPause] = useState('30s');
  const [maxFailures, setMaxFailures] = useState('0');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const hosts = fleet.list();

  useEffect(() => {
    if (!versions.includes(version)) setVersion(versions[0] ?? '');
  }, [versions.join(' ')]);

  const submit = async (e: Event) => {
    e.preventDefault();
    const errs: Record<string, string> = {};
    const c = parseCount(canaries, 0);
    const b = parseBatch(batch);
    const p = parsePause(pause);
    const m = parseCount(maxFailures, 0);
    const g = parseGroup(group);
    if (!version) errs.version = 'choose a release';
    if ('error' in c) errs.canaries = c.error;
    if ('error' in b) errs.batch = b.error;
    if ('error' in p) errs.pause = p.error;
    if ('error' in m) errs.max_failures = m.error;
    if (kind === 'group' && 'error' in g) errs.group = g.error;
    if (kind === 'nodes' && chosen.length === 0) errs.nodes = 'choose at least one host';
    setErrors(errs);
    setError('');
    const first = Object.keys(errs)[0];
    if (first) {
      (e.currentTarget as HTMLFormElement).querySelector<HTMLElement>(`[name="${first}"]`)?.focus();
      return;
    }
    const target: RolloutTarget = kind === 'all' ? 'all' : kind === 'group' ? { group: (g as { value: string }).value } : { nodes: chosen };
    const req: RolloutRequest = {
      version,
      target,
      canaries: (c as { value: number }).value,
      batch: (b as { value: number | string }).value,
      pause_between: (p as { value: string | number }).value,
      max_failures: (m as { value: number }).value,
    };
    setBusy(true);
    try {
      onStarted(await updatesApi.start(req));
    } catch (err) {
      setError(err instanceof ApiError && err.status === 409 ? `${err.message} (pause or abort the active rollout first)` : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const field = (name: string, label: string, value: string, set: (v: string) => void, hint: string, extra: Record<string, unknown> = {}) => (
    <div class="field">
      <label for={`ro-${name}`}>{label}</label>
      <input
        id={`ro-${name}`}
        name={name}
        type="text"
        autocomplete="off"
        spellcheck={false}
        value={value}
        onInput={(e) => set(e.currentTarget.value)}
        aria-invalid={errors[name] ? true : undefined}
        aria-describedby={`ro-${name}-hint${errors[name] ? ` ro-${name}-error` : ''}`}
        data-testid={`rollout-${name}`}
        {...extra}
      />
      <p class="hint" id={`ro-${name}-hint`}>
        {hint}
      </p>
      {errors[name] && (
        <p class="field-error" id={`ro-${name}-error`} data-testid={`rollout-${name}-error`}>
          {errors[name]}
        </p>
      )}
    </div>
  );

  return (
    <form class="panel rollout-form" onSubmit={submit} noValidate aria-labelledby="rollout-form-title" data-testid="rollout-form">
      <div class="panel-head">
        <h2 id="rollout-form-title">Start a rollout</h2>
        <span class="muted small">Canaries first; then batches; a failure beyond the limit halts it, and every agent rolls back by itself if it is not healthy.</span>
      </div>
      {versions.length === 0 ? (
        <p class="muted">Publish a release first.</p>
      ) : (
        <>
          <div class="form form-row">
            <div class="field">
              <label for="ro-version">Release</label>
              <select id="ro-version" name="version" value={version} onChange={(e) => setVersion(e.currentTarget.value)} data-testid="rollout-version">
                {versions.map((v) => (
                  <option key={v} value={v}>
                    {v}
                  </option>
                ))}
              </select>
            </div>
            <fieldset class="field target-choice">
              <legend>Target</legend>
              <div class="chips">
                {(['all', 'group', 'nodes'] as const).map((k) => (
                  <label key={k} class={`chip${kind === k ? ' on' : ''}`}>
                    <input type="radio" name="target" value={k} checked={kind === k} onChange={() => setKind(k)} class="sr-only" data-testid={`rollout-target-${k}`} />
                    {k === 'all' ? 'All hosts' : k === 'group' ? 'A group' : 'Chosen hosts'}
                  </label>
                ))}
              </div>
            </fieldset>
          </div>
          {kind === 'group' && field('group', 'Group', group, setGroup, 'the hosts whose label key has this value: role=web', { placeholder: 'key=value' })}
          {kind === 'nodes' && (
            <div class="field">
              <label for="ro-nodes">Hosts</label>
              <select
                id="ro-nodes"
                name="nodes"
                multiple
                size={Math.min(8, Math.max(3, hosts.length))}
                onChange={(e) => setChosen([...e.currentTarget.selectedOptions].map((o) => o.value))}
                aria-invalid={errors.nodes ? true : undefined}
                aria-describedby={errors.nodes ? 'ro-nodes-error' : undefined}
                data-testid="rollout-nodes"
              >
                {hosts.map((n) => (
                  <option key={n.id} value={n.id} selected={chosen.includes(n.id)}>
                    {n.hostname} ({n.agent_version || '?'})
                  </option>
                ))}
              </select>
              {errors.nodes && (
                <p class="field-error" id="ro-nodes-error" data-testid="rollout-nodes-error">
                  {errors.nodes}
                </p>
              )}
            </div>
          )}
          <div class="form form-row">
            {field('canaries', 'Canaries', canaries, setCanaries, 'updated first, alone', { inputMode: 'numeric' })}
            {field('batch', 'Batch', batch, setBatch, 'hosts at a time: 2, or 25%')}
            {field('pause', 'Pause between batches', pause, setPause, '30s, 2m, 0')}
            {field('max_failures', 'Failures allowed', maxFailures, setMaxFailures, 'more halts the rollout', { inputMode: 'numeric' })}
          </div>
          {error && (
            <p class="form-error" role="alert" data-testid="rollout-error">
              {error}
            </p>
          )}
          <div>
            <button type="submit" class="btn btn-primary" disabled={busy} data-testid="rollout-start">
              {busy ? 'Starting…' : 'Start rollout'}
            </button>
          </div>
        </>
      )}
    </form>
  );
}

// ---- Rollouts ---------------------------------------------------------------------

function Progress({ r }: { r: Rollout }) {
  const c = r.counts;
  const total = c.pending + c.waiting + c.updating + c.healthy + c.failed + c.rolled_back + c.skipped;
  const parts: [string, number, string][] = [
    ['healthy', c.healthy, 'ok'],
    ['failed', c.failed, 'bad'],
    ['rolled back', c.rolled_back, 'warn'],
    ['skipped', c.skipped, 'muted'],
    ['updating', c.updating, 'info'],
  ];
  const pending = c.pending + c.waiting;
  const summary = `${c.healthy} of ${total} healthy, ${c.failed} failed, ${c.rolled_back} rolled back, ${c.updating} updating, ${pending} pending`;
  return (
    <div class="rollout-progress" data-testid="rollout-progress" data-healthy={c.healthy} data-failed={c.failed} data-rolled-back={c.rolled_back} data-pending={pending} data-total={total}>
      <div class="progress-bar" role="img" aria-label={summary}>
        {total > 0 && parts.map(([k, n, tone]) => (n > 0 ? <span key={k} class={`pb-${tone}`} style={{ width: `${(100 * n) / total}%` }} /> : null))}
      </div>
      <span class="small muted">
        {c.healthy}/{total} healthy
        {c.failed ? ` · ${c.failed} failed` : ''}
        {c.rolled_back ? ` · ${c.rolled_back} rolled back` : ''}
        {c.updating ? ` · ${c.updating} updating` : ''}
        {pending ? ` · ${pending} pending` : ''}
        {c.waiting ? ` (${c.waiting} offline)` : ''}
      </span>
    </div>
  );
}

function StateBadge({ r }: { r: Rollout }) {
  return (
    <span class={`badge ${ROLLOUT_TONE[r.state] ?? 'muted'}`} data-testid="rollout-state" data-state={r.state}>
      {r.state}
    </span>
  );
}

/** A rollout as the hub last said: read, then kept current by the stream, or polled while it is active and the stream is silent. */
function useRollout(id: string) {
  useFleet();
  const [read, setRead] = useState<Rollout | null>(null);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  const live = fleet.liveRollouts.get(id);
  const r = newer(read && read.id === id ? read : null, live);
  const poll = !!read && read.id === id && rolloutActive(read.state) && fleet.liveRollouts.size === 0;
  useEffect(() => {
    let on = true;
    updatesApi.rollout(id).then(
      (x) => {
        if (!on) return;
        setRead(x);
        setError('');
      },
      (err) => on && setError((err as Error).message),
    );
    return () => {
      on = false;
    };
  }, [id, gen, fleet.snapshots]);
  useEffect(() => {
    if (!poll) return;
    const t = setTimeout(() => setGen((g) => g + 1), POLL_MS);
    return () => clearTimeout(t);
  }, [poll, read]);
  return { r, error, set: setRead, reload: () => setGen((g) => g + 1) };
}

function RolloutDetail({ id, admin }: { id: string; admin: boolean }) {
  const { r, error, set, reload } = useRollout(id);
  const [busy, setBusy] = useState(false);
  const [actError, setActError] = useState('');
  const [confirmAbort, setConfirmAbort] = useState(false);
  if (error && !r) return <ErrorBox message={error} retry={reload} />;
  if (!r) return <p class="muted">Loading the rollout…</p>;
  const act = async (fn: (id: string) => Promise<Rollout>) => {
    setBusy(true);
    setActError('');
    try {
      set(await fn(r.id));
    } catch (err) {
      setActError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const hosts = [...r.hosts].sort((a, b) => a.batch - b.batch || a.hostname.localeCompare(b.hostname));
  return (
    <div class="panel rollout-detail" data-testid="rollout-detail" data-id={r.id} aria-labelledby="rollout-title">
      <div class="panel-head">
        <h2 id="rollout-title">
          Rollout of <span class="mono">{r.version}</span>
        </h2>
        <StateBadge r={r} />
        <span class="muted small">
          {targetText(r.target)} · {r.canaries} canar{r.canaries === 1 ? 'y' : 'ies'} · batch {r.batch} · pause {durationMs(r.pause_between_ms)} · {r.max_failures} failure
          {r.max_failures === 1 ? '' : 's'} allowed · by {r.created_by} at {clock(r.created_ms)}
          {r.finished_ms ? ` · ended ${clock(r.finished_ms)}` : ''}
        </span>
        <span class="spacer" />
        {admin && rolloutActive(r.state) && (
          <div class="btn-row">
            {r.state === 'running' ? (
              <button type="button" class="btn btn-small" disabled={busy} onClick={() => act(updatesApi.pause)} data-testid="rollout-pause">
                Pause
              </button>
            ) : (
              <button type="button" class="btn btn-small" disabled={busy} onClick={() => act(updatesApi.resume)} data-testid="rollout-resume">
                Resume
              </button>
            )}
            <button type="button" class="btn btn-small btn-danger-outline" disabled={busy} onClick={() => setConfirmAbort(true)} data-testid="rollout-abort">
              Abort
            </button>
          </div>
        )}
        <Link href={screenHref('/updates')} class="btn btn-small btn-ghost" title="Close this rollout">
          Close
        </Link>
      </div>
      {r.reason && (
        <p class={r.state === 'done' ? 'form-notice' : 'form-error'} data-testid="rollout-reason">
          {r.reason}
        </p>
      )}
      {actError && (
        <p class="form-error" role="alert" data-testid="rollout-action-error">
          {actError}
        </p>
      )}
      <Progress r={r} />
      <div class="table-scroll" tabIndex={0} role="region" aria-label={`Hosts of the rollout of ${r.version}`}>
        <table class="simple cards">
          <thead>
            <tr>
              <th>Host</th>
              <th>Stage</th>
              <th>State</th>
              <th>Version</th>
              <th>Reason</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {hosts.map((h) => {
              const s = HOST_STATE[h.state] ?? { tone: 'muted', icon: '?', label: h.state };
              return (
                <tr key={h.node_id} data-testid="rollout-host" data-node-id={h.node_id} data-state={h.state} data-stage={h.stage}>
                  <td>
                    <Link href={hostUrl(h.node_id, 'agent')}>{h.hostname}</Link> {h.simulated && <Badge text="simulated" tone="muted" />}
                  </td>
                  <td data-label="stage">{h.stage === 'canary' ? 'canary' : `batch ${h.batch}`}</td>
                  <td data-label="state">
                    <span class={`host-state ${s.tone}`}>
                      <span aria-hidden="true">{s.icon}</span> {s.label}
                    </span>
                  </td>
                  <td class="mono nowrap" data-label="version">
                    {h.from_version || '?'} → {r.version}
                  </td>
                  <td data-label="reason">
                    {h.reason || <span class="muted">—</span>}
                    {h.command_id && <small class="sub mono">{h.command_id}</small>}
                  </td>
                  <td class="nowrap" data-label="updated">
                    {clock(h.updated_ms)}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {confirmAbort && (
        <Confirm
          title={`Abort the rollout of ${r.version}?`}
          confirmLabel="Abort rollout"
          onCancel={() => setConfirmAbort(false)}
          onConfirm={async () => {
            set(await updatesApi.abort(r.id));
            setConfirmAbort(false);
          }}
        >
          Hosts not yet updated stay on their version; hosts already updated keep the new one. An update in progress finishes (or rolls back) by itself.
        </Confirm>
      )}
    </div>
  );
}

/** The rollouts as read, with what the stream said since; polled while one is active and the stream says nothing of rollouts. */
function useRollouts() {
  useFleet();
  const [read, setRead] = useState<Rollout[] | null>(null);
  const [error, setError] = useState('');
  const [missing, setMissing] = useState(false);
  const [gen, setGen] = useState(0);
  useEffect(() => {
    let on = true;
    updatesApi.rollouts().then(
      (l) => {
        if (!on) return;
        setRead(l);
        setError('');
      },
      (err) => {
        if (!on) return;
        if (err instanceof ApiError && (err.status === 404 || err.status === 405)) setMissing(true);
        else setError((err as Error).message);
      },
    );
    return () => {
      on = false;
    };
  }, [gen, fleet.snapshots]);
  const byId = new Map((read ?? []).map((r) => [r.id, r]));
  for (const r of fleet.liveRollouts.values()) byId.set(r.id, newer(byId.get(r.id), r)!);
  const list = read ? [...byId.values()].sort((a, b) => b.created_ms - a.created_ms) : null;
  const poll = !!list && list.some((r) => rolloutActive(r.state)) && fleet.liveRollouts.size === 0;
  useEffect(() => {
    if (!poll) return;
    const t = setTimeout(() => setGen((g) => g + 1), POLL_MS);
    return () => clearTimeout(t);
  }, [poll, read]);
  return { list, error, missing, reload: () => setGen((g) => g + 1) };
}

function RolloutList({ list, open }: { list: Rollout[]; open: string | null }) {
  if (list.length === 0)
    return (
      <Empty title="No rollouts yet" testId="rollouts-empty">
        A rollout updates the fleet's agents to a release: canaries first, then batches.
      </Empty>
    );
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Rollouts">
      <table class="simple cards">
        <thead>
          <tr>
            <th>Release</th>
            <th>State</th>
            <th>Progress</th>
            <th>Target</th>
            <th>Started</th>
          </tr>
        </thead>
        <tbody>
          {list.map((r) => (
            <tr key={r.id} class={open === r.id ? 'is-open' : undefined} data-testid="rollout-row" data-id={r.id} data-state={r.state}>
              <td>
                <Link href={screenHref('/updates', { rollout: r.id })} data-testid="rollout-open">
                  <span class="mono">{r.version}</span>
                </Link>
              </td>
              <td data-label="state">
                <StateBadge r={r} />
              </td>
              <td data-label="progress">
                <Progress r={r} />
              </td>
              <td data-label="target">{targetText(r.target)}</td>
              <td class="nowrap" data-label="started">
                <span title={dateTime(r.created_ms)}>{ago(r.created_ms)}</span>
                <small class="sub">by {r.created_by}</small>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// ---- The screen -------------------------------------------------------------------

export function Updates({ query }: { query: URLSearchParams }) {
  useFleet();
  const role = useContext(RoleContext);
  const admin = can(role, 'rollout.manage');
  const releases = useLoad(() => updatesApi.releases(), []);
  const rollouts = useRollouts();
  const open = query.get('rollout');

  return (
    <section class="screen updates" aria-labelledby="updates-title">
      <div class="screen-head">
        <h1 id="updates-title">Updates</h1>
        <span class="muted">Signed releases, rolled out in stages with automatic rollback</span>
      </div>
      {open && <RolloutDetail key={open} id={open} admin={admin} />}
      <HubPanel />
      <div class="grid2 updates-top">
        <FleetVersions selected={query.get('version')} />
        <Releases list={releases.data} error={releases.error} reload={releases.reload} />
      </div>
      {admin && !rollouts.missing && releases.data && (
        <StartRollout
          releases={releases.data}
          onStarted={(r) => {
            rollouts.reload();
            setQuery({ rollout: r.id }, { push: true });
          }}
        />
      )}
      <div class="panel" data-testid="rollouts">
        <div class="panel-head">
          <h2>Rollouts</h2>
        </div>
        {rollouts.missing ? (
          <Empty title="This hub does not offer rollouts yet" testId="rollouts-unavailable">
            Update one host at a time from its page (Update agent), or with <code>POST /api/v1/nodes/NODE/commands</code> (docs/updates.md).
          </Empty>
        ) : rollouts.error && !rollouts.list ? (
          <ErrorBox message={rollouts.error} retry={rollouts.reload} />
        ) : !rollouts.list ? (
          <p class="muted">Loading…</p>
        ) : (
          <RolloutList list={rollouts.list} open={open} />
        )}
      </div>
    </section>
  );
}
