// The internet gateway card on the overview (GET /api/v1/gateway): public
// address, upstream up or down, link rates, the round trip (UniFi) and the
// DSL line (FRITZ!Box) when the router reports them, uptime, when it was
// last read; a second gateway (a modem in front of a router) below the first.
// Read again when the hub reports a gateway event on the stream (address
// changed, upstream down or up, unreachable) and once a minute, so that
// "last updated" stays honest. A failed poll shows its reason; the hub then
// has no current address, and the last one it saw is labelled as such.

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { Badge } from '../components/bits';
import { ago, dateTime, duration } from '../format';
import { fleet } from '../store';
import type { GatewayDsl, GatewayReport, GatewayStatus } from '../types';
import { useLoad } from '../useLoad';

/** The pseudo node the hub's gateway events come from (crates/hub/src/gateway.rs). */
const GATEWAY_NODE = '_gateway';
const REFRESH_MS = 60_000;

/** Bits per second, as routers give link rates. */
export function bits(bps: number | null | undefined): string {
  if (bps == null || !Number.isFinite(bps)) return '—';
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let v = bps;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export function GatewayCard() {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), REFRESH_MS);
    return () => clearInterval(t);
  }, []);
  // The newest live gateway event: a new one means the status changed.
  const lastEvent = fleet.liveEvents.find((e) => e.node_id === GATEWAY_NODE)?.ts ?? 0;
  const gw = useLoad(() => api.gateway(), [tick, lastEvent]);
  const g: GatewayReport | null = gw.data;

  return (
    <div class="panel gateway" data-testid="gateway-card">
      <h2>Internet gateway</h2>
      {gw.error && !g ? (
        <p class="muted" data-testid="gateway-error">Could not read the gateway's status: {gw.error}</p>
      ) : !g ? (
        <p class="muted">Loading…</p>
      ) : !g.provider ? (
        <p class="muted" data-testid="gateway-hint">
          No gateway is configured. Start the hub with <code>--gateway upnp</code> (or <code>fritzbox://USER@HOST</code>, <code>unifi://HOST</code>, <code>probe:HOST:PORT</code>) to see the public address and whether the internet link is up.
        </p>
      ) : (
        <>
          <GatewayBody g={g} />
          {g.gateways.slice(1).map((x, i) => (
            <section key={x.spec ?? i} class="gateway-more" aria-label={`Gateway ${x.device || x.spec || x.provider}`} data-testid="gateway-more">
              <h3>{x.device || x.spec || x.provider}</h3>
              <GatewayBody g={x} />
            </section>
          ))}
        </>
      )}
    </div>
  );
}

const DSL_TONE: Record<string, string> = { up: 'ok', down: 'bad', nosignal: 'bad', error: 'bad' };

/** The line's state, the rates it synchronised at and what it could carry. */
function DslLine({ dsl }: { dsl: GatewayDsl }) {
  const synced = dsl.down_sync_bps != null || dsl.up_sync_bps != null;
  const attainable = dsl.down_attainable_bps != null || dsl.up_attainable_bps != null;
  return (
    <dd data-testid="gateway-dsl" data-status={dsl.status}>
      <Badge text={dsl.status || 'unknown'} tone={DSL_TONE[dsl.status.toLowerCase()] ?? 'warn'} />
      {synced && (
        <span class="num" data-testid="gateway-dsl-sync">
          {' '}
          synced ↓ {bits(dsl.down_sync_bps)} · ↑ {bits(dsl.up_sync_bps)}
        </span>
      )}
      {attainable && (
        <small class="sub" data-testid="gateway-dsl-attainable">
          attainable ↓ {bits(dsl.down_attainable_bps)} · ↑ {bits(dsl.up_attainable_bps)}
        </small>
      )}
    </dd>
  );
}

function GatewayBody({ g }: { g: GatewayStatus }) {
  const tone = g.upstream === 'up' ? 'ok' : g.upstream === 'down' ? 'bad' : 'muted';
  const link = g.link;
  return (
    <div data-testid="gateway-status" data-upstream={g.upstream}>
      <dl class="kv gateway-kv">
        <dt>Upstream</dt>
        <dd>
          <Badge text={g.upstream} tone={tone} /> <span class="muted">{g.device || g.provider}</span>
        </dd>
        <dt>Public address</dt>
        <dd class="mono" data-testid="gateway-ip">
          {g.public_ip ?? (
            <span class="muted">
              unknown{g.last_public_ip ? ` (last seen ${g.last_public_ip})` : ''}
            </span>
          )}
        </dd>
        {link && (link.down_bps != null || link.up_bps != null || link.max_down_bps != null) && (
          <>
            <dt>Traffic</dt>
            <dd class="num">
              ↓ {bits(link.down_bps)} · ↑ {bits(link.up_bps)}
              {link.max_down_bps != null && (
                <small class="sub">
                  link {bits(link.max_down_bps)} down · {bits(link.max_up_bps)} up
                </small>
              )}
            </dd>
          </>
        )}
        {g.latency_ms != null && (
          <>
            <dt>Round trip</dt>
            <dd class="num" data-testid="gateway-latency">
              {Number.isInteger(g.latency_ms) || g.latency_ms >= 10 ? Math.round(g.latency_ms) : g.latency_ms.toFixed(1)} ms
            </dd>
          </>
        )}
        {g.dsl && (
          <>
            <dt>DSL line</dt>
            <DslLine dsl={g.dsl} />
          </>
        )}
        {g.uptime_secs != null && g.error == null && (
          <>
            <dt>Connected for</dt>
            <dd>{duration(g.uptime_secs)}</dd>
          </>
        )}
        <dt>Last updated</dt>
        <dd data-testid="gateway-updated">
          {g.last_updated_ms ? <span title={dateTime(g.last_updated_ms)}>{ago(g.last_updated_ms)}</span> : <span class="muted">never</span>}
        </dd>
      </dl>
      {g.error && (
        <p class="form-notice" role="note" data-testid="gateway-problem">
          {g.error}
        </p>
      )}
    </div>
  );
}
