// Every host: filter, sort, live numbers and sparklines, from the hosts'
// summaries (the stream's summary view). Virtualised, so a fleet of 10,000
// renders only the rows on screen.

import { useEffect } from 'preact/hooks';
import { Dot } from '../components/bits';
import { Sparkline } from '../components/Sparkline';
import { rowCount, rowIndex, VirtualList } from '../components/VirtualList';
import { bytes, duration, memPct, pct, rate } from '../format';
import { hostUrl, Link, setQuery } from '../router';
import { cancelPrefill, prefillSpark } from '../prefill';
import { fleet } from '../store';
import type { HostSummary } from '../types';
import { useFleet } from '../useFleet';
import { PHONE, useMedia } from '../useMedia';

const SORTS: Record<string, (a: HostSummary, b: HostSummary) => number> = {
  name: () => 0,
  cpu: (a, b) => (b.resources?.cpu_pct ?? -1) - (a.resources?.cpu_pct ?? -1),
  mem: (a, b) => (memPct(b.resources) ?? -1) - (memPct(a.resources) ?? -1),
  net: (a, b) => (b.resources?.net_bps ?? -1) - (a.resources?.net_bps ?? -1),
};

export function matchesHost(n: HostSummary, q: string) {
  if (!q) return true;
  const s = q.toLowerCase();
  return (
    n.hostname.toLowerCase().includes(s) ||
    n.id.toLowerCase().includes(s) ||
    (n.os || '').toLowerCase().includes(s) ||
    Object.entries(n.labels || {}).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(s))
  );
}

function HostRow({ n, index }: { n: HostSummary; index: number }) {
  // A row that stays on screen a moment fills its sparklines from history.
  useEffect(() => {
    const t = setTimeout(() => prefillSpark(n.id), 400);
    return () => {
      clearTimeout(t);
      cancelPrefill(n.id);
    };
  }, [n.id]);
  const r = n.resources;
  const sp = fleet.sparks.get(n.id);
  const unavailable = n.sources_down?.length ?? 0;
  return (
    <div class={`row host-row${n.connected ? '' : ' is-down'}`} role="row" aria-rowindex={rowIndex(index)} aria-labelledby={`host-name-${n.id}`} data-testid="host-row" data-node-id={n.id}>
      <span class="c-status" role="cell">
        <Dot up={n.connected} label={n.connected ? 'connected' : 'disconnected'} />
      </span>
      <span class="c-name" role="cell" id={`host-name-${n.id}`} data-testid="hostname">
        <Link href={hostUrl(n.id)}>{n.hostname}</Link>
        <small class="sub">
          {n.os || '—'}
          {n.simulated ? ' · simulated' : ''}
          {n.agentless && (
            <span title="no agent: the hub collects this host over SSH" data-testid="agentless">
              {' '}· agentless, every {n.agentless.interval_secs} s
            </span>
          )}
          {unavailable > 0 && (
            <span class="warn-text" title="some sources are unavailable on this host" data-testid="sources-warning">
              {' '}· {unavailable} source{unavailable > 1 ? 's' : ''} unavailable
            </span>
          )}
        </small>
      </span>
      <span class="c-metric" role="cell">
        <span class="num" data-testid="cpu">{r ? pct(r.cpu_pct) : '—'}</span>
        <Sparkline values={sp?.cpu ?? []} max={100} kind="cpu" label={`CPU of ${n.hostname}`} />
      </span>
      <span class="c-metric" role="cell">
        <span class="num" data-testid="mem" title={r ? `${bytes(r.mem_used)} of ${bytes(r.mem_total)}` : ''}>
          {r ? pct(memPct(r)) : '—'}
        </span>
        <Sparkline values={sp?.mem ?? []} max={100} kind="mem" label={`Memory of ${n.hostname}`} />
      </span>
      <span class="c-metric c-net" role="cell">
        <span class="num" data-testid="net">{r && r.net_bps != null ? rate(r.net_bps) : '—'}</span>
        <Sparkline values={sp?.net ?? []} kind="net" label={`Network of ${n.hostname}`} />
      </span>
      <span class="c-small num" role="cell">{r ? r.load1.toFixed(2) : '—'}</span>
      <span class="c-small num" role="cell">{n.containers}</span>
      <span class="c-small num" role="cell">{r ? duration(r.uptime_secs) : '—'}</span>
    </div>
  );
}

export function Hosts({ query }: { query: URLSearchParams }) {
  useFleet();
  const phone = useMedia(PHONE);
  const q = query.get('q') || '';
  const status = query.get('status') || 'all';
  const sort = query.get('sort') || 'name';
  const all = fleet.list();
  let rows = all.filter((n) => (status === 'all' || (status === 'up') === n.connected) && matchesHost(n, q));
  if (sort !== 'name' && SORTS[sort]) rows = [...rows].sort(SORTS[sort]);

  return (
    <section class="screen screen-fill" aria-labelledby="hosts-title">
      <div class="screen-head">
        <h1 id="hosts-title">Hosts</h1>
        <span class="muted" data-testid="hosts-count">
          {rows.length === all.length ? `${all.length} hosts` : `${rows.length} of ${all.length} hosts`}
        </span>
      </div>
      <div class="toolbar" role="search">
        <input type="search" placeholder="Filter by name, OS, label…  ( / )" aria-label="Filter hosts" value={q} onInput={(e) => setQuery({ q: e.currentTarget.value })} data-testid="host-search" />
        <select aria-label="Status" value={status} onChange={(e) => setQuery({ status: e.currentTarget.value === 'all' ? null : e.currentTarget.value })} data-testid="host-status">
          <option value="all">All</option>
          <option value="up">Up</option>
          <option value="down">Down</option>
        </select>
        <select aria-label="Sort by" value={sort} onChange={(e) => setQuery({ sort: e.currentTarget.value === 'name' ? null : e.currentTarget.value })} data-testid="host-sort">
          <option value="name">Name</option>
          <option value="cpu">CPU</option>
          <option value="mem">Memory</option>
          <option value="net">Network</option>
        </select>
      </div>
      {!fleet.loaded ? (
        <p class="muted">Loading the fleet…</p>
      ) : all.length === 0 ? (
        <div class="empty" data-testid="empty">
          <strong>No hosts yet</strong>
          <p>
            Create a join string with <code>twinbay ctl join-token create</code> and start <code>twinbay agent --join …</code> on a host.
          </p>
        </div>
      ) : rows.length === 0 ? (
        <div class="empty" data-testid="empty">
          <strong>No host matches</strong>
          <p>Change the filter to see more.</p>
        </div>
      ) : (
        <div class="table hosts-table" role="table" aria-label="Hosts" aria-rowcount={rowCount(rows.length)}>
          <div class="row head" role="row" aria-rowindex={1}>
            <span class="c-status" role="columnheader">
              <span class="sr-only">Status</span>
            </span>
            <span class="c-name" role="columnheader">Host</span>
            <span class="c-metric" role="columnheader">CPU</span>
            <span class="c-metric" role="columnheader">Memory</span>
            <span class="c-metric c-net" role="columnheader">Network</span>
            <span class="c-small" role="columnheader">Load</span>
            <span class="c-small" role="columnheader">
              <abbr title="Containers">Ctrs</abbr>
            </span>
            <span class="c-small" role="columnheader">Uptime</span>
          </div>
          <VirtualList items={rows} rowHeight={phone ? 84 : 52} label="Hosts" testId="hosts-list" row={(n, i) => <HostRow key={n.id} n={n} index={i} />} />
        </div>
      )}
    </section>
  );
}
