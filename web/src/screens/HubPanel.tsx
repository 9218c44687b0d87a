// The hub itself, on the Updates screen (GET /api/v1/hub; docs/replicas.md):
// its version, the store it keeps its records in, the agents connected and,
// when it runs as several replicas, the live ones (agent links held, started,
// which one leads, which one is answering). Read once on open, then again
// 10 s after each answer while the page is visible (never while hidden).

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { Badge, ErrorBox } from '../components/bits';
import { ago, dateTime } from '../format';
import type { HubReplicas, HubStatus } from '../types';

const REFRESH_MS = 10_000;

/** How the store is named on screen (`store` of GET /api/v1/hub). */
export const STORE_NAME: Record<string, string> = { sqlite: 'SQLite, embedded', postgres: 'PostgreSQL' };

/** GET /api/v1/hub: once, then 10 s after each answer while the page is visible. */
function useHubStatus() {
  const [hub, setHub] = useState<HubStatus | null>(null);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    let on = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Due while the page was hidden: read when it shows again.
    let due = false;
    const visible = () => document.visibilityState === 'visible';
    const load = () => {
      api.hub().then(
        (h) => {
          if (!on) return;
          setHub(h);
          setError('');
        },
        (err) => on && setError((err as Error).message),
      ).finally(() => {
        if (on) timer = setTimeout(tick, REFRESH_MS);
      });
    };
    const tick = () => {
      if (visible()) load();
      else due = true;
    };
    const onVisible = () => {
      if (!visible() || !due) return;
      due = false;
      load();
    };
    load();
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      on = false;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [gen]);
  return { hub, error, reload: () => setGen((g) => g + 1) };
}

function ReplicaTable({ r }: { r: HubReplicas }) {
  const live = [...r.live].sort((a, b) => a.id.localeCompare(b.id));
  const liveIds = new Set(live.map((x) => x.id));
  // Agents still recorded as held by a replica whose lease has lapsed.
  const lapsed = Object.keys(r.links).filter((id) => !liveIds.has(id)).sort();
  const leading = r.leader ? r.this : r.leading;
  const role = (id: string) =>
    id === leading ? <Badge text="leader" tone="ok" /> : leading ? 'follower' : <span class="muted">unknown</span>;
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Hub replicas">
      <table class="simple cards hub-replicas" data-testid="hub-replicas">
        <thead>
          <tr>
            <th>Replica</th>
            <th>URL</th>
            <th>Agent links</th>
            <th>Started</th>
            <th>Role</th>
          </tr>
        </thead>
        <tbody>
          {live.map((x) => (
            <tr key={x.id} class={x.id === r.this ? 'is-this' : undefined} data-testid="replica-row" data-id={x.id} data-this={String(x.id === r.this)} data-leader={leading ? String(x.id === leading) : undefined}>
              <td>
                <span class="mono">{x.id}</span> {x.id === r.this && <Badge text="this one" tone="info" />}
              </td>
              <td class="mono" data-label="url">
                {x.public_url || <span class="muted">—</span>}
              </td>
              <td class="num" data-label="agent links" data-testid="replica-links">
                {r.links[x.id] ?? 0}
              </td>
              <td class="nowrap" data-label="started">
                <span title={dateTime(x.started_ms)}>{ago(x.started_ms)}</span>
              </td>
              <td data-label="role">{role(x.id)}</td>
            </tr>
          ))}
          {lapsed.map((id) => (
            <tr key={id} data-testid="replica-row" data-id={id} data-this="false" data-lapsed="true">
              <td>
                <span class="mono">{id}</span>
              </td>
              <td data-label="url">
                <span class="muted">—</span>
              </td>
              <td class="num" data-label="agent links" data-testid="replica-links">
                {r.links[id]}
              </td>
              <td data-label="started">
                <span class="muted">—</span>
              </td>
              <td data-label="role">
                <Badge text="lease lapsed" tone="warn" />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function HubFacts({ hub }: { hub: HubStatus }) {
  const r = hub.replicas;
  return (
    <>
      <dl class="hub-facts">
        <div>
          <dt>Version</dt>
          <dd class="mono" data-testid="hub-version">
            {hub.version}
          </dd>
        </div>
        <div>
          <dt>Store</dt>
          <dd data-testid="hub-store" data-store={hub.store}>
            {STORE_NAME[hub.store] ?? hub.store}
          </dd>
        </div>
        <div>
          <dt>Agents connected</dt>
          <dd data-testid="hub-connected" data-connected={hub.connected} data-nodes={hub.nodes}>
            <span class="num">{hub.connected}</span> <span class="muted">of {hub.nodes}</span>
          </dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>
            <span title={dateTime(hub.started_ms)}>{ago(hub.started_ms)}</span>
          </dd>
        </div>
        {r && (
          <div>
            <dt>Replicas</dt>
            <dd data-testid="hub-replica-count">
              {r.live.length} live · this one {r.leader ? 'leads' : 'follows'}
            </dd>
          </div>
        )}
      </dl>
      {r && <ReplicaTable r={r} />}
      {r && r.dropped_messages > 0 && (
        <p class="small muted" data-testid="hub-dropped">
          {r.dropped_messages} twin change{r.dropped_messages === 1 ? ' was' : 's were'} not published: the bus fell behind.
        </p>
      )}
    </>
  );
}

/** The "Hub" panel: the control plane as this hub (replica) reports it. */
export function HubPanel() {
  const { hub, error, reload } = useHubStatus();
  return (
    <section class="panel hub-panel" aria-labelledby="hub-title" data-testid="hub-panel">
      <div class="panel-head">
        <h2 id="hub-title">Hub</h2>
        <span class="muted small">{hub?.replicas ? 'Replicas sharing one store and bus' : 'The control plane'}</span>
      </div>
      {hub ? <HubFacts hub={hub} /> : error ? <ErrorBox message={error} retry={reload} /> : <p class="muted">Loading…</p>}
      {hub && error && (
        <p class="small muted" role="status" data-testid="hub-stale">
          Not refreshed: {error}
        </p>
      )}
    </section>
  );
}
