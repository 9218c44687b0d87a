// Every container in the fleet, searchable and filtered by state.

import { Badge, Empty, FilterChips, FleetSourceUnavailable } from '../components/bits';
import { rowCount, rowIndex, VirtualList } from '../components/VirtualList';
import { offered, Verbs } from '../components/Verbs';
import { bytes, pct } from '../format';
import { hostUrl, Link, setQuery } from '../router';
import { containerFailing, fleet, type ContainerRow, type RowHost } from '../store';
import type { Container, Sample } from '../types';
import { useEffect } from 'preact/hooks';
import { watchCollection } from '../stream';
import { useFleet } from '../useFleet';
import { PHONE, useMedia } from '../useMedia';

export const CONTAINER_STATES: Record<string, (c: Container) => boolean> = {
  all: () => true,
  running: (c) => c.state === 'running',
  failing: containerFailing,
  stopped: (c) => c.state === 'exited' || c.state === 'created' || c.state === 'dead',
  paused: (c) => c.state === 'paused',
};

export function containerStats(node: RowHost & { resources?: Sample | null }, id: string) {
  return node.resources?.containers?.find((s) => s.id === id);
}

export function ContainerLine({ node, c, showHost, index }: { node: RowHost & { resources?: Sample | null }; c: Container; showHost: boolean; index: number }) {
  const st = c.state === 'running' ? containerStats(node, c.id) : undefined;
  const failing = containerFailing(c);
  return (
    <div class={`row ctr-row${failing ? ' is-bad' : ''}`} role="row" aria-rowindex={rowIndex(index)} data-testid="container-row" data-state={c.state} data-name={c.name} data-started={c.started_at ?? ''}>
      <span class="c-state" role="cell">
        <Badge text={c.health && c.health !== 'none' ? c.health : c.state} tone={failing ? 'bad' : undefined} />
      </span>
      <span class="c-name" role="cell">
        <strong>{c.name}</strong>
        <small class="sub">
          {c.compose_project ? `${c.compose_project}/${c.compose_service || '?'} · ` : ''}
          {c.state === 'exited' && c.exit_code != null ? `exit ${c.exit_code}` : c.id.slice(0, 12)}
          {c.restart_count > 0 ? ` · ${c.restart_count} restarts` : ''}
        </small>
      </span>
      {showHost && (
        <span class="c-host" role="cell">
          <Link href={hostUrl(node.id, 'containers')}>{node.hostname}</Link>
        </span>
      )}
      <span class="c-image" role="cell" title={c.image}>
        {c.image}
      </span>
      <span class="c-small num" role="cell">{st ? pct(st.cpu_pct) : '—'}</span>
      <span class="c-small num" role="cell">{st ? bytes(st.mem_bytes) : '—'}</span>
      <span class="c-ports" role="cell" title={c.ports.join(', ')}>
        {c.ports.join(', ') || '—'}
      </span>
      <span class="c-verbs" role="cell">
        <Verbs node={node} target={{ kind: 'container', name: c.name }} offer={offered(c.state === 'running' || c.state === 'restarting' || c.state === 'paused')} />
      </span>
    </div>
  );
}

export function ContainerTable({ rows, showHost, label }: { rows: ContainerRow[]; showHost: boolean; label: string }) {
  const phone = useMedia(PHONE);
  return (
    <div class={`table ctr-table${showHost ? ' with-host' : ''}`} role="table" aria-label={label} aria-rowcount={rowCount(rows.length)}>
      <div class="row head" role="row" aria-rowindex={1}>
        <span class="c-state" role="columnheader">State</span>
        <span class="c-name" role="columnheader">Name</span>
        {showHost && <span class="c-host" role="columnheader">Host</span>}
        <span class="c-image" role="columnheader">Image</span>
        <span class="c-small" role="columnheader">CPU</span>
        <span class="c-small" role="columnheader">Memory</span>
        <span class="c-ports" role="columnheader">Ports</span>
        <span class="c-verbs" role="columnheader">
          <span class="sr-only">Commands</span>
        </span>
      </div>
      <VirtualList items={rows} rowHeight={phone ? 72 : 48} label={label} testId="containers-list" row={(r, i) => <ContainerLine key={`${r.node.id}/${r.c.id}`} node={r.node} c={r.c} showHost={showHost} index={i} />} />
    </div>
  );
}

export function Containers({ query }: { query: URLSearchParams }) {
  useFleet();
  // Every host's part of the collections listed, while the screen is open.
  useEffect(() => {
    const c0 = watchCollection('containers');
    return () => {
      c0();
    };
  }, []);
  const q = (query.get('q') || '').toLowerCase();
  const state = CONTAINER_STATES[query.get('state') || 'all'] ? query.get('state') || 'all' : 'all';
  const all = fleet.containers();
  const test = CONTAINER_STATES[state];
  const rows = all.filter(
    (r) => test(r.c) && (!q || r.c.name.toLowerCase().includes(q) || r.c.image.toLowerCase().includes(q) || r.node.hostname.toLowerCase().includes(q) || (r.c.compose_project || '').toLowerCase().includes(q)),
  );
  const counts = Object.fromEntries(Object.entries(CONTAINER_STATES).map(([k, f]) => [k, all.filter((r) => f(r.c)).length]));

  return (
    <section class="screen screen-fill" aria-labelledby="ctr-title">
      <div class="screen-head">
        <h1 id="ctr-title">Containers</h1>
        <span class="muted" data-testid="containers-count">
          {rows.length === all.length ? `${all.length} containers` : `${rows.length} of ${all.length} containers`}
        </span>
      </div>
      <div class="toolbar" role="search">
        <input type="search" placeholder="Search name, image, host, project…  ( / )" aria-label="Search containers" value={query.get('q') || ''} onInput={(e) => setQuery({ q: e.currentTarget.value })} data-testid="container-search" />
        <FilterChips label="State" param="state" options={Object.keys(CONTAINER_STATES)} value={state} counts={counts} />
      </div>
      <FleetSourceUnavailable source="containers" noun="Container" nodes={fleet.list()} />
      {!fleet.has('containers') ? (
        <p class="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <Empty title={all.length === 0 ? 'No containers in the fleet' : 'No container matches'}>
          {all.length === 0 ? 'Agents report Docker or Podman containers when an engine socket is reachable.' : 'Change the search or the state filter.'}
        </Empty>
      ) : (
        <ContainerTable rows={rows} showHost label="Containers" />
      )}
    </section>
  );
}
