// Fleet health at a glance: what is up, what is failing, who uses the most,
// what just happened. Everything here comes from the hosts' summaries (counts
// and the first few problems of each host), so 10,000 hosts cost no twins.

import { Badge, Dot, Empty, Meter } from '../components/bits';
import { EventLine, useTimeline } from '../events';
import { ago, bytes, memPct, pct } from '../format';
import { hostUrl, Link } from '../router';
import { fleet } from '../store';
import type { HostSummary, Problem } from '../types';
import { useFleet } from '../useFleet';
import { BackupsCard } from './BackupsCard';
import { GatewayCard } from './Gateway';

const OPTIONAL_SOURCES = new Set(['gpu', 'smart', 'temperatures']);
const ATTN = 5;

function More({ n, href, what }: { n: number; href: string; what: string }) {
  if (n <= 0) return null;
  return (
    <li class="more-line">
      <Link href={href}>
        and {n} more {what} →
      </Link>
    </li>
  );
}

function Stat({ label, value, sub, tone, href, testId }: { label: string; value: string | number; sub: string; tone?: string; href: string; testId: string }) {
  return (
    <Link href={href} class={`stat ${tone ?? ''}`} data-testid={testId}>
      <span class="stat-label">{label}</span>
      <span class="stat-value num">{value}</span>
      <span class="stat-sub">{sub}</span>
    </Link>
  );
}

function TopList({ title, nodes, value, meter, testId }: { title: string; nodes: HostSummary[]; value: (n: HostSummary) => string; meter: (n: HostSummary) => number | null; testId: string }) {
  return (
    <div class="panel" data-testid={testId}>
      <h2>{title}</h2>
      {nodes.length === 0 ? (
        <p class="muted">No samples yet.</p>
      ) : (
        <ol class="top-list">
          {nodes.map((n) => (
            <li key={n.id}>
              <Link href={hostUrl(n.id)}>{n.hostname}</Link>
              <Meter value={meter(n)} label={`${title}: ${n.hostname}`} />
              <span class="num">{value(n)}</span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

/** A problem a host's summary names, with its host. */
interface Named {
  node: HostSummary;
  p: Problem;
}

/** The problems of `kind` the summaries name (each names its first few). */
function named(nodes: HostSummary[], kind: Problem['kind']): Named[] {
  const out: Named[] = [];
  for (const node of nodes) for (const p of node.attention ?? []) if (p.kind === kind) out.push({ node, p });
  return out;
}

/** The fleet's proxy routes at a glance: how many, and the broken ones first. */
function RoutesPanel({ nodes }: { nodes: HostSummary[] }) {
  const s = fleet.derive('overview-routes', () => ({
    total: nodes.reduce((a, n) => a + n.routes, 0),
    broken: nodes.reduce((a, n) => a + n.routes_broken, 0),
    named: named(nodes, 'route'),
  }));
  return (
    <div class="panel" data-testid="routes-panel">
      <h2>
        Proxy routes <Link href="/routes" class="more">all routes →</Link>
      </h2>
      {s.total === 0 ? (
        <p class="muted">No reverse proxy reports routes yet.</p>
      ) : s.broken === 0 ? (
        <p class="muted">
          {s.total} route{s.total === 1 ? '' : 's'}, none broken.
        </p>
      ) : (
        <ul class="attn-list">
          {s.named.slice(0, ATTN).map((r) => (
            <li key={`${r.node.id}/${r.p.key}`}>
              <Badge text={r.p.state} tone="bad" />
              <Link href={hostUrl(r.node.id, 'routes')}>{r.p.name}</Link>
              <span class="muted">
                → {r.p.target} on {r.node.hostname}
              </span>
            </li>
          ))}
          <More n={s.broken - Math.min(ATTN, s.named.length)} href="/routes?show=broken" what="broken routes" />
        </ul>
      )}
    </div>
  );
}

export function Overview() {
  useFleet();
  const nodes = fleet.list();
  const tl = useTimeline(undefined, 12);
  // Structure-derived counts are memoised; samples are read fresh.
  const s = fleet.derive('overview', () => {
    const down = nodes.filter((n) => !n.connected);
    const sum = (f: (n: HostSummary) => number) => nodes.reduce((a, n) => a + f(n), 0);
    // Hardware a host may simply not have (a GPU, SMART disks, sensors) is
    // shown on the host's page, not counted here as a problem.
    const noSource = nodes.filter((n) => (n.sources_down ?? []).some((s) => !OPTIONAL_SOURCES.has(s.name)));
    return {
      down,
      ctrs: sum((n) => n.containers),
      running: sum((n) => n.containers_running),
      failing: sum((n) => n.containers_failing),
      failingCtrs: named(nodes, 'container'),
      units: sum((n) => n.units),
      failed: sum((n) => n.units_failed),
      failedUnits: named(nodes, 'unit'),
      noSource,
    };
  });
  const live = nodes.filter((n) => n.connected && n.resources);
  const topCpu = [...live].sort((a, b) => b.resources!.cpu_pct - a.resources!.cpu_pct).slice(0, 5);
  const topMem = [...live].sort((a, b) => (memPct(b.resources) ?? 0) - (memPct(a.resources) ?? 0)).slice(0, 5);

  if (!fleet.loaded) return <p class="muted">Loading the fleet…</p>;
  if (nodes.length === 0)
    return (
      <section class="screen">
        <h1>Overview</h1>
        <Empty title="No hosts yet">
          Run <code>twinbay ctl join-token create</code> on the hub and <code>twinbay agent --join …</code> on a host; it appears here the moment it connects.
        </Empty>
        <div class="grid2 after-empty">
          <GatewayCard />
        </div>
      </section>
    );

  const attention = s.down.length + s.failing + s.failed;
  return (
    <section class="screen" aria-labelledby="overview-title">
      <div class="screen-head">
        <h1 id="overview-title">Overview</h1>
        <span class="muted">{attention === 0 ? 'All good' : `${attention} thing${attention > 1 ? 's' : ''} need${attention > 1 ? '' : 's'} attention`}</span>
      </div>
      <div class="stats">
        <Stat label="Hosts up" value={`${nodes.length - s.down.length} / ${nodes.length}`} sub={s.down.length ? `${s.down.length} down` : 'all connected'} tone={s.down.length ? 'bad' : 'ok'} href="/hosts" testId="stat-hosts" />
        <Stat label="Containers running" value={`${s.running} / ${s.ctrs}`} sub={s.failing ? `${s.failing} failing` : 'none failing'} tone={s.failing ? 'bad' : 'ok'} href={s.failing ? '/containers?state=failing' : '/containers'} testId="stat-containers" />
        <Stat label="Units failed" value={s.failed} sub={`of ${s.units} units`} tone={s.failed ? 'bad' : 'ok'} href={s.failed ? '/units?state=failed' : '/units'} testId="stat-units" />
        <Stat label="Sources unavailable" value={s.noSource.length} sub={s.noSource.length ? 'hosts where a source cannot run' : 'every source reporting'} tone={s.noSource.length ? 'warn' : 'ok'} href="/hosts" testId="stat-sources" />
      </div>

      <div class="grid2">
        <div class="panel" data-testid="attention">
          <h2>Needs attention</h2>
          {attention === 0 ? (
            <p class="muted">Nothing is down or failing.</p>
          ) : (
            <ul class="attn-list">
              {s.down.slice(0, ATTN).map((n) => (
                <li key={`h${n.id}`}>
                  <Dot up={false} label="disconnected" />
                  <Link href={hostUrl(n.id)}>{n.hostname}</Link>
                  <span class="muted">down · last seen {ago(n.last_seen)}</span>
                </li>
              ))}
              <More n={s.down.length - ATTN} href="/hosts?status=down" what="hosts down" />
              {s.failingCtrs.slice(0, ATTN).map((r) => (
                <li key={`c${r.node.id}${r.p.key}`}>
                  <Badge text={r.p.state} tone="bad" />
                  <Link href={hostUrl(r.node.id, 'containers')}>{r.p.name}</Link>
                  <span class="muted">
                    on {r.node.hostname}
                    {r.p.exit_code != null ? ` · exit ${r.p.exit_code}` : ''}
                  </span>
                </li>
              ))}
              <More n={s.failing - Math.min(ATTN, s.failingCtrs.length)} href="/containers?state=failing" what="failing containers" />
              {s.failedUnits.slice(0, ATTN).map((r) => (
                <li key={`u${r.node.id}${r.p.key}`}>
                  <Badge text="failed" tone="bad" />
                  <Link href={hostUrl(r.node.id, 'units')}>{r.p.name}</Link>
                  <span class="muted">on {r.node.hostname}</span>
                </li>
              ))}
              <More n={s.failed - Math.min(ATTN, s.failedUnits.length)} href="/units?state=failed" what="failed units" />
            </ul>
          )}
        </div>
        <div class="panel" data-testid="recent-events">
          <h2>
            Recent events <Link href="/events" class="more">all events →</Link>
          </h2>
          {tl.loading ? (
            <p class="muted">Loading…</p>
          ) : tl.events.length === 0 ? (
            <p class="muted">No events yet.</p>
          ) : (
            <div class="table event-table compact" role="table" aria-label="Recent events">{tl.events.slice(0, 8).map((e, i) => <EventLine key={i} e={e} showHost short />)}</div>
          )}
        </div>
        <GatewayCard />
        <RoutesPanel nodes={nodes} />
        <BackupsCard />
        <TopList title="Top CPU" nodes={topCpu} value={(n) => pct(n.resources!.cpu_pct)} meter={(n) => n.resources!.cpu_pct} testId="top-cpu" />
        <TopList title="Top memory" nodes={topMem} value={(n) => `${pct(memPct(n.resources))} · ${bytes(n.resources!.mem_used)}`} meter={(n) => memPct(n.resources)} testId="top-mem" />
      </div>
    </section>
  );
}
