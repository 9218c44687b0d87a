// Every systemd unit in the fleet, searchable and filtered by state.

import { Badge, Empty, FilterChips, FleetSourceUnavailable } from '../components/bits';
import { rowCount, rowIndex, VirtualList } from '../components/VirtualList';
import { offered, Verbs } from '../components/Verbs';
import { ago, bytes } from '../format';
import { hostUrl, Link, setQuery } from '../router';
import { fleet, unitFailing, type UnitRow } from '../store';
import type { Unit } from '../types';
import { useEffect } from 'preact/hooks';
import { watchCollection } from '../stream';
import { useFleet } from '../useFleet';
import { PHONE, useMedia } from '../useMedia';

export const UNIT_STATES: Record<string, (u: Unit) => boolean> = {
  all: () => true,
  active: (u) => u.active_state === 'active',
  failed: unitFailing,
  inactive: (u) => u.active_state === 'inactive',
  changing: (u) => /ing$/.test(u.active_state),
};

export function UnitLine({ r, showHost, index }: { r: UnitRow; showHost: boolean; index: number }) {
  const u = r.u;
  return (
    <div class={`row unit-row${unitFailing(u) ? ' is-bad' : ''}`} role="row" aria-rowindex={rowIndex(index)} data-testid="unit-row" data-state={u.active_state} data-name={u.name}>
      <span class="c-state" role="cell">
        <Badge text={u.active_state || '?'} />
      </span>
      <span class="c-name" role="cell">
        <strong>{u.name}</strong>
        {u.need_daemon_reload && (
          <span class="reload-badge" title="The unit's files changed since systemd loaded them: what runs is not what the files say (systemctl daemon-reload)" data-testid="unit-needs-reload">
            <Badge text="needs daemon-reload" tone="warn" />
          </span>
        )}
        <small class="sub">
          {u.sub_state}
          {u.user ? ' · user' : ''}
          {u.description ? ` · ${u.description}` : ''}
        </small>
        {!showHost && u.fragment_path && (
          <small class="sub mono unit-file" title={[u.fragment_path, ...(u.drop_in_paths ?? [])].join('\n')} data-testid="unit-file">
            {u.fragment_path}
            {u.drop_in_paths?.length ? ` + ${u.drop_in_paths.length} drop-in${u.drop_in_paths.length === 1 ? '' : 's'}` : ''}
          </small>
        )}
      </span>
      {showHost && (
        <span class="c-host" role="cell">
          <Link href={hostUrl(r.node.id, 'units')}>{r.node.hostname}</Link>
        </span>
      )}
      <span class="c-small num" role="cell">{u.memory_bytes != null ? bytes(u.memory_bytes) : '—'}</span>
      <span class="c-since" role="cell">{u.since ? ago(u.since * 1000) : '—'}</span>
      <span class="c-verbs" role="cell">
        <Verbs node={r.node} target={{ kind: u.user ? 'user_unit' : 'unit', name: u.name }} offer={offered(u.active_state === 'active' || u.active_state === 'reloading' || u.active_state === 'activating')} />
      </span>
    </div>
  );
}

export function UnitTable({ rows, showHost, label }: { rows: UnitRow[]; showHost: boolean; label: string }) {
  const phone = useMedia(PHONE);
  return (
    <div class={`table unit-table${showHost ? ' with-host' : ' with-file'}`} role="table" aria-label={label} aria-rowcount={rowCount(rows.length)}>
      <div class="row head" role="row" aria-rowindex={1}>
        <span class="c-state" role="columnheader">State</span>
        <span class="c-name" role="columnheader">Unit</span>
        {showHost && <span class="c-host" role="columnheader">Host</span>}
        <span class="c-small" role="columnheader">Memory</span>
        <span class="c-since" role="columnheader">Since</span>
        <span class="c-verbs" role="columnheader">
          <span class="sr-only">Commands</span>
        </span>
      </div>
      <VirtualList items={rows} rowHeight={phone ? (showHost ? 72 : 88) : showHost ? 48 : 64} label={label} testId="units-list" row={(r, i) => <UnitLine key={`${r.node.id}/${r.key}`} r={r} showHost={showHost} index={i} />} />
    </div>
  );
}

export function Units({ query }: { query: URLSearchParams }) {
  useFleet();
  // Every host's part of the collections listed, while the screen is open.
  useEffect(() => {
    const u0 = watchCollection('units');
    return () => {
      u0();
    };
  }, []);
  const q = (query.get('q') || '').toLowerCase();
  const state = UNIT_STATES[query.get('state') || 'all'] ? query.get('state') || 'all' : 'all';
  const all = fleet.units();
  const test = UNIT_STATES[state];
  const rows = all.filter((r) => test(r.u) && (!q || r.u.name.toLowerCase().includes(q) || r.u.description.toLowerCase().includes(q) || r.node.hostname.toLowerCase().includes(q)));
  const counts = Object.fromEntries(Object.entries(UNIT_STATES).map(([k, f]) => [k, all.filter((r) => f(r.u)).length]));

  return (
    <section class="screen screen-fill" aria-labelledby="units-title">
      <div class="screen-head">
        <h1 id="units-title">Units</h1>
        <span class="muted" data-testid="units-count">
          {rows.length === all.length ? `${all.length} units` : `${rows.length} of ${all.length} units`}
        </span>
      </div>
      <div class="toolbar" role="search">
        <input type="search" placeholder="Search unit, description, host…  ( / )" aria-label="Search units" value={query.get('q') || ''} onInput={(e) => setQuery({ q: e.currentTarget.value })} data-testid="unit-search" />
        <FilterChips label="State" param="state" options={Object.keys(UNIT_STATES)} value={state} counts={counts} />
      </div>
      <FleetSourceUnavailable source="units" noun="Unit" nodes={fleet.list()} />
      {!fleet.has('units') ? (
        <p class="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <Empty title={all.length === 0 ? 'No units in the fleet' : 'No unit matches'}>
          {all.length === 0 ? 'Agents report systemd units over D-Bus where a bus is reachable.' : 'Change the search or the state filter.'}
        </Empty>
      ) : (
        <UnitTable rows={rows} showHost label="Units" />
      )}
    </section>
  );
}
