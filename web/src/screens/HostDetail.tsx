// One host: live numbers, charts over a chosen range, and everything the
// agent reports, tab by tab.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { Badge, Dot, Empty, ErrorBox, Meter, SourceUnavailable } from '../components/bits';
import { Chart } from '../components/Chart';
import { EventLine, useTimeline } from '../events';
import { ago, bytes, clock, duration, memPct, netRate, pct, rate } from '../format';
import { appendLive, loadHistory, RANGES, type History } from '../history';
import { Link, setQuery } from '../router';
import { fleet, routeBroken, targetState } from '../store';
import { watchNode } from '../stream';
import type { NodeView } from '../types';
import { useFleet } from '../useFleet';
import { Verbs } from '../components/Verbs';
import { ContainerTable } from './Containers';
import { ActionsTab, CommandsTab } from './HostCommands';
import { FilesTab } from './Files';
import { UnitTable } from './Units';
import { RouteTable } from './Routes';
import { AgentVersion } from './UpdateAgent';
import { ChangeList, changesUrl, PastBanner, pastMoment, TimeControl, usePastNode } from '../past';

const TABS = ['overview', 'containers', 'units', 'routes', 'files', 'ports', 'processes', 'events', 'changes', 'actions', 'commands', 'agent'] as const;

/** The metric charts over `range`; with `at` (a past moment) the range around it, the moment marked. */
function Charts({ node, range, theme, at }: { node: NodeView; range: string; theme: string; at: number | null }) {
  const r0 = RANGES.find((x) => x.key === range) ?? RANGES[1];
  // A past moment older than the range: the range centred on it.
  const end = at != null && at < Date.now() - r0.ms * 0.8 ? Math.min(Date.now(), at + r0.ms / 2) : null;
  const r = end == null ? r0 : { ...r0, key: `${r0.key}@${end}` };
  const [hist, setHist] = useState<(History & { key: string }) | null>(null);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);

  useEffect(() => {
    let live = true;
    setError('');
    loadHistory(node.id, r.ms, 1500, end ?? undefined).then(
      (h) => live && setHist({ ...h, key: r.key }),
      (err) => live && setError(err.message),
    );
    return () => {
      live = false;
    };
  }, [node.id, r.ms, gen, end]);

  // Short ranges at raw resolution grow with every live sample.
  const s = node.resources;
  useEffect(() => {
    if (!s || r.ms > 6 * 3600e3 || end != null) return;
    const ts = s.ts_ms / 1000;
    const from = (Date.now() - r.ms) / 1000;
    const nets = s.nets?.filter((n) => n.iface !== 'lo') ?? [];
    // An update of the latest state: a history loaded since this render must not be lost.
    setHist((h) =>
      h && h.resolution === 'raw' && h.key === r.key
        ? {
            ...h,
            cpu: appendLive(h.cpu, ts, [s.cpu_pct, s.cpu_pct], from),
            mem: appendLive(h.mem, ts, [s.mem_used, s.mem_total], from),
            net: appendLive(h.net, ts, [nets.reduce((a, n) => a + n.rx_bps, 0), nets.reduce((a, n) => a + n.tx_bps, 0)], from),
            load: appendLive(h.load, ts, [s.load1], from),
          }
        : h,
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [s?.ts_ms]);

  // The x axis spans the range, or from the first sample when history is younger.
  const xs = hist ? (hist.cpu[0] as number[]) : [];
  const lastTs = xs.at(-1) ?? 0;
  const start = Math.max(hist ? hist.from / 1000 : 0, lastTs - r.ms / 1000);
  const since = xs.length && xs[0] > start + 60 ? xs[0] : null;
  const xRange: [number, number] = hist ? [since ?? start, Math.max(hist.to / 1000, lastTs)] : [0, 1];
  return (
    <div class="panel charts-panel" data-mark={at ?? ''}>
      <div class="panel-head">
        <h2>History</h2>
        <div class="chips" role="group" aria-label="Time range" data-testid="range-picker">
          {RANGES.map((x) => (
            <button key={x.key} type="button" class={`chip${x.key === r0.key ? ' on' : ''}`} aria-pressed={x.key === r0.key} onClick={() => setQuery({ range: x.key === '1h' ? null : x.key }, { push: true })} data-testid={`range-${x.key}`}>
              {x.label}
            </button>
          ))}
        </div>
        <span class="muted small" data-testid="chart-resolution" data-range={hist?.key ?? ''} data-resolution={hist?.resolution ?? ''}>
          {hist && hist.key !== r.key ? 'loading…' : hist ? `${hist.resolution === 'raw' ? 'raw samples' : `${hist.resolution} rollups (avg)`} · ${(hist.cpu[0] as number[]).length} points${since ? ` · history since ${clock(since * 1000)}` : ''}` : 'loading…'}
        </span>
      </div>
      {error ? (
        <ErrorBox message={error} retry={() => setGen((g) => g + 1)} />
      ) : !hist ? (
        <div class="charts-loading" />
      ) : (hist.cpu[0] as number[]).length === 0 ? (
        <Empty title="No history in this range">The hub records samples from the moment the agent connects; pick a shorter range or wait a few seconds.</Empty>
      ) : (
        <div class="charts">
          <Chart title="CPU" testId="chart-cpu" data={hist.cpu} series={[{ label: 'avg', kind: 'cpu', fill: true }, { label: 'max', kind: 'cpu', dash: true }]} format={(v) => pct(v)} max={100} theme={theme} xRange={xRange} mark={at} />
          <Chart title="Memory" testId="chart-mem" data={hist.mem} series={[{ label: 'used', kind: 'mem', fill: true }, { label: 'total', kind: 'muted', dash: true }]} format={bytes} theme={theme} xRange={xRange} mark={at} />
          <Chart title="Network" testId="chart-net" data={hist.net} series={[{ label: 'receive', kind: 'net', fill: true }, { label: 'transmit', kind: 'tx' }]} format={rate} theme={theme} xRange={xRange} mark={at} />
          <Chart title="Load (1 min)" testId="chart-load" data={hist.load} series={[{ label: 'load1', kind: 'load', fill: true }]} format={(v) => v.toFixed(2)} theme={theme} xRange={xRange} mark={at} />
        </div>
      )}
    </div>
  );
}

function Resources({ node }: { node: NodeView }) {
  const s = node.resources;
  const disks = s?.disks ?? [];
  const mountErrors = Object.values(node.mounts).filter((m) => m.error);
  return (
    <div class="grid2">
      <div class="panel" data-testid="section-disks">
        <h2>Disks</h2>
        <SourceUnavailable source={node.sources.disks} />
        {disks.length === 0 && mountErrors.length === 0 ? (
          <p class="muted">No mounts reported.</p>
        ) : (
          <ul class="kv-list">
            {disks.map((d) => (
              <li key={d.mount}>
                <span class="mono">{d.mount}</span>
                <Meter value={d.total ? (100 * d.used) / d.total : null} label={`${d.mount} used`} />
                <span class="num">
                  {bytes(d.used)} / {bytes(d.total)}
                </span>
              </li>
            ))}
            {mountErrors.map((m) => (
              <li key={m.path}>
                <span class="mono">{m.path}</span>
                <span class="warn-text">unavailable: {m.error}</span>
              </li>
            ))}
          </ul>
        )}
        {Object.values(node.disk_health).length > 0 && (
          <ul class="kv-list">
            {Object.values(node.disk_health).map((d) => (
              <li key={d.device}>
                <span class="mono">{d.device}</span>
                {d.error ? <span class="warn-text">{d.error}</span> : <Badge text={d.passed === false ? 'SMART failed' : d.passed ? 'SMART ok' : 'SMART ?'} tone={d.passed === false ? 'bad' : d.passed ? 'ok' : 'muted'} />}
                <span class="muted">{[d.model, d.temp_c != null ? `${d.temp_c} °C` : '', d.wear_pct != null ? `${d.wear_pct}% worn` : ''].filter(Boolean).join(' · ')}</span>
              </li>
            ))}
          </ul>
        )}
        <SourceUnavailable source={node.sources.smart} />
      </div>
      <div class="panel" data-testid="section-network">
        <h2>Network</h2>
        <SourceUnavailable source={node.sources.network} />
        <ul class="kv-list">
          {Object.values(node.interfaces).map((i) => {
            const n = s?.nets?.find((x) => x.iface === i.name);
            return (
              <li key={i.name}>
                <span class="mono">
                  <Dot up={i.up} label={i.up ? 'up' : 'down'} /> {i.name}
                </span>
                <span class="muted">{i.speed_mbps ? `${i.speed_mbps} Mbit/s${i.duplex ? ` ${i.duplex}` : ''}` : ''}</span>
                <span class="num">{n ? `↓ ${rate(n.rx_bps)} ↑ ${rate(n.tx_bps)}` : '—'}</span>
              </li>
            );
          })}
        </ul>
        {(s?.temps?.length ?? 0) > 0 && (
          <>
            <h3>Temperatures</h3>
            <ul class="kv-list">
              {s!.temps!.slice(0, 8).map((t) => (
                <li key={t.sensor}>
                  <span>{t.sensor}</span>
                  <span class="num">{t.celsius.toFixed(0)} °C</span>
                </li>
              ))}
            </ul>
          </>
        )}
        {(s?.gpus?.length ?? 0) > 0 && (
          <>
            <h3>GPUs</h3>
            <ul class="kv-list">
              {s!.gpus!.map((g) => (
                <li key={g.index}>
                  <span>{g.name || `GPU ${g.index}`}</span>
                  <Meter value={g.util_pct} label={`GPU ${g.index} utilisation`} />
                  <span class="num">
                    {pct(g.util_pct)} · {bytes(g.mem_used)} / {bytes(g.mem_total)}
                  </span>
                </li>
              ))}
            </ul>
          </>
        )}
        <SourceUnavailable source={node.sources.temperatures} />
        <SourceUnavailable source={node.sources.gpu} />
      </div>
    </div>
  );
}

function PortsTab({ node }: { node: NodeView }) {
  const ports = Object.values(node.ports).sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
  return (
    <div class="panel" data-testid="section-ports">
      <SourceUnavailable source={node.sources.ports} />
      {ports.length === 0 ? (
        <Empty title="No listening ports" />
      ) : (
        <table class="simple">
          <thead>
            <tr>
              <th>Port</th>
              <th>Protocol</th>
              <th>Address</th>
              <th>Process</th>
            </tr>
          </thead>
          <tbody>
            {ports.map((p) => (
              <tr key={`${p.protocol}/${p.address}:${p.port}`} data-testid="port-row">
                <td class="num">{p.port}</td>
                <td>{p.protocol}</td>
                <td class="mono">{p.address}</td>
                <td>{p.process ? `${p.process}${p.pid ? ` (${p.pid})` : ''}` : <span class="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function ProcessesTab({ node }: { node: NodeView }) {
  const procs = Object.values(node.processes).sort((a, b) => b.cpu_pct - a.cpu_pct || b.rss - a.rss);
  return (
    <div class="panel" data-testid="section-processes">
      <SourceUnavailable source={node.sources.processes} />
      {procs.length === 0 ? (
        <Empty title="No processes reported" />
      ) : (
        <table class="simple">
          <thead>
            <tr>
              <th>PID</th>
              <th>Name</th>
              <th>CPU</th>
              <th>Memory</th>
              <th>UID</th>
            </tr>
          </thead>
          <tbody>
            {procs.map((p) => (
              <tr key={p.pid} data-testid="process-row">
                <td class="num">{p.pid}</td>
                <td>{p.name}</td>
                <td class="num">{pct(p.cpu_pct)}</td>
                <td class="num">{bytes(p.rss)}</td>
                <td class="num">{p.uid ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function EventsTab({ node }: { node: NodeView }) {
  const tl = useTimeline(node.id, 200);
  if (tl.error) return <ErrorBox message={tl.error} retry={tl.reload} />;
  if (tl.loading) return <p class="muted">Loading…</p>;
  if (tl.events.length === 0) return <Empty title="No events for this host yet" />;
  return (
    <div class="panel" data-testid="section-events">
      <div class="table event-table" role="table" aria-label={`Events on ${node.hostname}`}>{tl.events.map((e, i) => <EventLine key={i} e={e} showHost={false} />)}</div>
      {tl.more && (
        <button type="button" class="btn load-older" onClick={tl.loadOlder}>
          Load older events
        </button>
      )}
    </div>
  );
}

function AgentTab({ node }: { node: NodeView }) {
  const h = node.host;
  const rows: [string, string][] = [
    ['Node ID', node.id],
    ['Hostname', node.hostname],
    ['Agent version', node.agent_version || h.agent_version || '—'],
    ['Connection', node.connected ? 'connected' : 'disconnected'],
    ['Last seen', node.last_seen ? `${clock(node.last_seen)} (${ago(node.last_seen)})` : 'never'],
    ['Sequence', node.seq != null ? String(node.seq) : '—'],
    ['OS', h.os || '—'],
    ['Kernel', h.kernel || '—'],
    ['Architecture', h.arch || '—'],
    ['CPU cores', h.cpu_cores ? String(h.cpu_cores) : '—'],
    ['Booted', h.boot_time ? clock(h.boot_time * 1000) : '—'],
  ];
  for (const [k, v] of Object.entries(h.labels || {})) rows.push([`label ${k}`, v]);
  const sources = Object.values(node.sources).sort((a, b) => Number(a.available) - Number(b.available) || a.name.localeCompare(b.name));
  return (
    <div class="grid2">
      <div class="panel">
        <div class="panel-head">
          <h2>Agent</h2>
          <span class="spacer" />
          <Verbs node={node} target={{ kind: 'agent' }} offer={['status', 'version', 'logs', 'restart']} />
        </div>
        <dl class="ident" data-testid="identity">
          {rows.map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{v}</dd>
            </div>
          ))}
        </dl>
      </div>
      <div class="panel" data-testid="section-sources">
        <h2>Sources</h2>
        {sources.length === 0 ? (
          <p class="muted">The agent has not reported its sources yet.</p>
        ) : (
          <ul class="kv-list">
            {sources.map((s) => (
              <li key={s.name} data-testid="source-row" data-available={String(s.available)}>
                <span>{s.name}</span>
                <Badge text={s.available ? 'available' : 'unavailable'} tone={s.available ? 'ok' : 'warn'} />
                <span class="muted">{s.reason || ''}</span>
              </li>
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}

export function HostDetail({ id, query, theme }: { id: string; query: URLSearchParams; theme: string }) {
  useFleet();
  // The host's whole twin comes only while its page is open.
  useEffect(() => watchNode(id), [id]);
  const liveNode = fleet.detail.get(id);
  const tab = (TABS as readonly string[]).includes(query.get('tab') || '') ? (query.get('tab') as (typeof TABS)[number]) : 'overview';
  const range = query.get('range') || '1h';
  // A past moment (`?at=`): every panel shows the host as it was then.
  const at = pastMoment(query);
  const past = usePastNode(id, at);
  // Until the first past answer (or when it is refused), the panels wait; the
  // time control stays where it is (and keeps the keyboard's focus).
  const pastPending = at != null && !past.node;
  const node = at != null && past.node ? past.node : liveNode;
  // The changes tab: from `from` (else the moment shown, else an hour ago) to `to` (else now).
  const fromQ = Number(query.get('from')) || null;
  const toQ = Number(query.get('to')) || null;
  const changesFrom = useMemo(() => fromQ ?? at ?? Date.now() - 3600e3, [fromQ, at, id]);

  useEffect(() => {
    if (node) document.title = `${node.hostname} · twinbay`;
    return () => {
      document.title = 'twinbay';
    };
  }, [node?.hostname]);

  if (!node) {
    // Known from its summary: its twin is on the way.
    if (!fleet.loaded || (at == null && fleet.nodes.has(id))) return <p class="muted">Loading…</p>;
    return (
      <Empty title="No such host" testId="not-found">
        There is no host with id <code>{id}</code>. <Link href="/hosts">All hosts</Link>
      </Empty>
    );
  }
  const s = node.resources;
  const unavailable = Object.values(node.sources).filter((x) => !x.available);
  const ctrRows = Object.values(node.containers)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((c) => ({ node, c }));
  const unitRows = Object.entries(node.units)
    .sort((a, b) => a[1].name.localeCompare(b[1].name))
    .map(([key, u]) => ({ node, key, u }));
  const routeRows =
    at != null
      ? Object.entries(node.routes || {}).map(([key, r]) => {
          const state = targetState(r, node);
          return { node, key, r, state, broken: routeBroken(state) };
        })
      : Object.entries(node.routes || {}).map(([key, r]) => {
          const state = targetState(r, node);
          return { node, key, r, state, broken: routeBroken(state) };
        });
  const count: Record<string, number> = {
    containers: ctrRows.length,
    units: unitRows.length,
    files: Object.keys(node.files).length,
    routes: routeRows.length,
    ports: Object.keys(node.ports).length,
    processes: Object.keys(node.processes).length,
  };
  const actions = node.policy?.actions ? Object.keys(node.policy.actions).length : null;
  if (actions != null) count.actions = actions;

  return (
    <section class="screen detail" aria-labelledby="detail-hostname">
      <nav class="crumbs" aria-label="Breadcrumb">
        <Link href="/hosts">Hosts</Link> / <span>{node.hostname}</span>
      </nav>
      <div class="detail-head">
        <Dot up={node.connected} label={node.connected ? 'connected' : 'disconnected'} />
        <h1 id="detail-hostname" data-testid="detail-hostname">
          {node.hostname}
        </h1>
        <span class={`badge ${node.connected ? 'ok' : 'bad'}`} data-testid="detail-status">
          {node.connected ? 'connected' : 'disconnected'}
        </span>
        {node.simulated && <Badge text="simulated" tone="muted" />}
        {node.agentless && <Badge text={`agentless · every ${node.agentless.interval_secs} s`} tone="muted" />}
        <span class="muted small">
          {[node.host.os, node.host.kernel, node.host.arch].filter(Boolean).join(' · ')}
          {node.connected ? '' : ` · last seen ${ago(node.last_seen)}`}
        </span>
        {!node.agentless && <AgentVersion node={node} />}
      </div>
      {node.agentless && (
        <p class="muted small" data-testid="agentless-missing">
          Collected over SSH without an agent. Not available without one: {node.agentless.without_agent.join(', ')}.
        </p>
      )}
      {unavailable.length > 0 && (
        <p class="unavailable-summary" data-testid="sources-summary">
          {unavailable.length} source{unavailable.length > 1 ? 's' : ''} unavailable: {unavailable.map((x) => x.name).join(', ')} —{' '}
          <Link href={`/hosts/${encodeURIComponent(id)}?tab=agent`}>details</Link>
        </p>
      )}
      <TimeControl at={at} start={past.start} label={node.hostname} onEngage={past.engage} />
      {at != null && past.node && <PastBanner what={node.hostname} at={past.node.at} recorded={past.node.recorded_at} compare={changesUrl(id, past.node.at)} />}
      {pastPending && (past.error ? <ErrorBox message={past.error} /> : <p class="muted">Loading the host as it was at {new Date(at).toLocaleString()}…</p>)}
      {!pastPending && <div class="stats stats-host" data-testid="live-stats">
        <div class="stat">
          <span class="stat-label">CPU</span>
          <span class="stat-value num" data-testid="detail-cpu">
            {s ? pct(s.cpu_pct) : '—'}
          </span>
          <span class="stat-sub">{s?.cpu_mhz ? `${(s.cpu_mhz / 1000).toFixed(2)} GHz · ` : ''}{node.host.cpu_cores || '?'} cores</span>
        </div>
        <div class="stat">
          <span class="stat-label">Memory</span>
          <span class="stat-value num" data-testid="detail-mem">
            {s ? pct(memPct(s)) : '—'}
          </span>
          <span class="stat-sub">{s ? `${bytes(s.mem_used)} of ${bytes(s.mem_total)}${s.swap_total ? ` · swap ${bytes(s.swap_used)}` : ''}` : '—'}</span>
        </div>
        <div class="stat">
          <span class="stat-label">Network</span>
          <span class="stat-value num">{s ? rate(netRate(s)) : '—'}</span>
          <span class="stat-sub">receive + transmit</span>
        </div>
        <div class="stat">
          <span class="stat-label">Load</span>
          <span class="stat-value num">{s ? s.load1.toFixed(2) : '—'}</span>
          <span class="stat-sub">{s ? `${s.load5.toFixed(2)} · ${s.load15.toFixed(2)} · up ${duration(s.uptime_secs)}` : '—'}</span>
        </div>
      </div>}
      <div class="tabs" role="tablist" aria-label="Host sections">
        {TABS.map((t) => (
          <Link
            key={t}
            href={tabHref(id, t, range, at)}
            role="tab"
            aria-selected={tab === t}
            class={`tab${tab === t ? ' on' : ''}`}
            data-testid={`tab-${t}`}
          >
            {t}
            {count[t] != null && <span class="chip-n">{count[t]}</span>}
          </Link>
        ))}
      </div>
      {!pastPending && <div role="tabpanel" class="tabpanel">
        {tab === 'overview' && (
          <>
            <Charts node={node} range={range} theme={theme} at={at} />
            <Resources node={node} />
          </>
        )}
        {tab === 'containers' && (
          <div data-testid="section-containers">
            <SourceUnavailable source={node.sources.containers} />
            {ctrRows.length === 0 ? <Empty title="No containers on this host" /> : <ContainerTable rows={ctrRows} showHost={false} label={`Containers on ${node.hostname}`} />}
          </div>
        )}
        {tab === 'units' && (
          <div data-testid="section-units">
            <SourceUnavailable source={node.sources.units} />
            <SourceUnavailable source={node.sources['user-units']} />
            {unitRows.length === 0 ? <Empty title="No units on this host" /> : <UnitTable rows={unitRows} showHost={false} label={`Units on ${node.hostname}`} />}
          </div>
        )}
        {tab === 'routes' && (
          <div data-testid="section-routes">
            <SourceUnavailable source={node.sources.routes} />
            {routeRows.length === 0 ? (
              <Empty title="No proxy routes on this host">The agent reports the routes of nginx, Caddy or Traefik when one runs here.</Empty>
            ) : (
              <RouteTable rows={routeRows} showHost={false} label={`Routes on ${node.hostname}`} />
            )}
          </div>
        )}
        {tab === 'files' && <FilesTab node={node} query={query} />}
        {tab === 'ports' && <PortsTab node={node} />}
        {tab === 'processes' && <ProcessesTab node={node} />}
        {tab === 'events' && <EventsTab node={node} />}
        {tab === 'changes' && <ChangeList node={id} hostname={node.hostname} from={changesFrom} to={toQ} />}
        {tab === 'actions' && <ActionsTab node={node} />}
        {tab === 'commands' && <CommandsTab node={node} />}
        {tab === 'agent' && <AgentTab node={node} />}
      </div>}
    </section>
  );
}

/** A tab's link, keeping the range (overview) and the moment shown. */
function tabHref(id: string, t: string, range: string, at: number | null): string {
  const q = new URLSearchParams();
  if (t !== 'overview') q.set('tab', t);
  if (t === 'overview' && range !== '1h') q.set('range', range);
  if (at != null) q.set('at', String(at));
  const s = q.toString();
  return `/hosts/${encodeURIComponent(id)}${s ? `?${s}` : ''}`;
}
