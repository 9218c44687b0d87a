// Every reverse-proxy route of the fleet: public name → proxy → upstream →
// target → state. Computed from the live twins in the store (the same rule as
// the hub's GET /api/v1/routes), so a container stopping or a route changing
// shows at once, without polling.

import { Badge, Empty, FilterChips } from '../components/bits';
import { hostUrl, Link, setQuery } from '../router';
import { fleet, type RouteRow } from '../store';
import type { Route, TargetState } from '../types';
import { useEffect } from 'preact/hooks';
import { watchCollection } from '../stream';
import { useFleet } from '../useFleet';

const STATE_TONE: Record<TargetState, string> = {
  running: 'ok',
  stopped: 'bad',
  missing: 'bad',
  external: 'muted',
  unknown: 'warn',
};

const STATE_HELP: Record<TargetState, string> = {
  running: 'the target runs',
  stopped: 'the target container is not running',
  missing: 'the target is gone from the host',
  external: 'another host or the internet',
  unknown: 'the agent could not tell what the upstream is',
};

export const ROUTE_FILTERS: Record<string, (r: RouteRow) => boolean> = {
  all: () => true,
  broken: (r) => r.broken,
};

/** `https://host/path` as a reader would type it (`*` for a catch-all). */
export function publicName(r: Route): string {
  return `${r.tls ? 'https' : 'http'}://${r.host || '*'}${r.path && r.path !== '/' ? r.path : ''}`;
}

function targetText(r: RouteRow): string {
  const t = r.r.target;
  switch (t?.kind) {
    case 'container':
      return t.name || t.id.slice(0, 12);
    case 'port':
      return `port ${t.key}`;
    case 'external':
      return 'outside this host';
    default:
      return 'not resolved';
  }
}

function matches(r: RouteRow, q: string): boolean {
  if (!q) return true;
  const t = r.r.target;
  const fields = [r.r.host, r.r.path, r.r.upstream, r.node.hostname, r.r.instance, r.r.provider, t.kind === 'container' ? t.name : t.kind === 'port' ? t.key : ''];
  return fields.some((f) => f.toLowerCase().includes(q));
}

export function RouteTable({ rows, showHost, label }: { rows: RouteRow[]; showHost: boolean; label: string }) {
  return (
    <table class="simple cards routes" aria-label={label} aria-rowcount={rows.length + 1} data-testid="routes-table">
      <thead>
        <tr aria-rowindex={1}>
          <th scope="col">Public name</th>
          <th scope="col">Proxy</th>
          <th scope="col">Upstream</th>
          <th scope="col">Target</th>
          <th scope="col">State</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr
            key={`${r.node.id}/${r.key}`}
            aria-rowindex={i + 2}
            class={r.broken ? 'is-bad' : undefined}
            data-testid="route-row"
            data-host={r.r.host}
            data-state={r.state}
            data-broken={String(r.broken)}
          >
            <td class="route-name">
              <strong class="mono">{publicName(r.r)}</strong>
            </td>
            <td data-label="via">
              {showHost ? <Link href={hostUrl(r.node.id, 'routes')}>{r.node.hostname}</Link> : null}
              <small class="sub">
                {r.r.provider}
                {r.r.instance && r.r.instance !== 'host' ? ` · ${r.r.instance}` : ' on the host'}
              </small>
            </td>
            <td class="mono route-upstream" data-label="→">
              {r.r.upstream}
            </td>
            <td data-label="target">
              {r.r.target.kind === 'container' ? (
                <Link href={hostUrl(r.node.id, 'containers')}>{targetText(r)}</Link>
              ) : (
                <span class={r.r.target.kind === 'port' ? 'mono' : 'muted'}>{targetText(r)}</span>
              )}
            </td>
            <td class="nowrap">
              <span title={STATE_HELP[r.state]}>
                <Badge text={r.broken ? `${r.state} · broken` : r.state} tone={STATE_TONE[r.state]} />
              </span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Routes({ query }: { query: URLSearchParams }) {
  useFleet();
  // Every host's part of the collections listed, while the screen is open.
  useEffect(() => {
    const r0 = watchCollection('routes');
    const c1 = watchCollection('containers');
    const p2 = watchCollection('ports');
    return () => {
      r0(); c1(); p2();
    };
  }, []);
  const q = (query.get('q') || '').toLowerCase();
  const show = query.get('show') === 'broken' ? 'broken' : 'all';
  const all = fleet.routes();
  const rows = all.filter((r) => ROUTE_FILTERS[show](r) && matches(r, q));
  const counts = Object.fromEntries(Object.entries(ROUTE_FILTERS).map(([k, f]) => [k, all.filter(f).length]));

  return (
    <section class="screen" aria-labelledby="routes-title">
      <div class="screen-head">
        <h1 id="routes-title">Routes</h1>
        <span class="muted" data-testid="routes-count">
          {rows.length === all.length ? `${all.length} route${all.length === 1 ? '' : 's'}` : `${rows.length} of ${all.length} routes`}
          {counts.broken > 0 ? ` · ${counts.broken} broken` : ''}
        </span>
      </div>
      <div class="toolbar" role="search">
        <input type="search" placeholder="Search name, upstream, host, container…  ( / )" aria-label="Search routes" value={query.get('q') || ''} onInput={(e) => setQuery({ q: e.currentTarget.value })} data-testid="route-search" />
        <FilterChips label="Show" param="show" options={Object.keys(ROUTE_FILTERS)} value={show} counts={counts} testId={(k) => `route-filter-${k}`} />
      </div>
      {!fleet.has('routes') ? (
        <p class="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <Empty title={all.length === 0 ? 'No proxy routes in the fleet' : show === 'broken' && !q ? 'No broken routes' : 'No route matches'} testId="routes-empty">
          {all.length === 0
            ? 'Agents read the routes of nginx, Caddy and Traefik running on their host or in a container there; each route shows where it leads and whether that is up.'
            : show === 'broken' && !q
              ? 'Every route leads to something running (or outside its host).'
              : 'Change the search or the filter.'}
        </Empty>
      ) : (
        <div class="panel">
          <RouteTable rows={rows} showHost label="Proxy routes" />
        </div>
      )}
    </section>
  );
}
