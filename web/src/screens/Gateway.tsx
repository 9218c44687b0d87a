// The internet gateway card on the overview (GET /api/v1/gateway): public
// address, upstream up or down, link rates, uptime, when it was last read.
// Read again when the hub reports a gateway event on the stream (address
// changed, upstream down or up, unreachable) and once a minute, so that
// "last updated" stays honest. A failed poll shows its reason; the hub then
// has no current address, and the last one it saw is labelled as such.

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { Badge } from '../components/bits';
import { ago, dateTime, duration } from '../format';
import { fleet } from '../store';
import type { GatewayReport } from '../types';
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
        <GatewayBody g={g} />
      )}
    </div>
  );
}

function GatewayBody({ g }: { g: GatewayReport }) {
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
      {g.gateways.length > 1 && <p class="muted">and {g.gateways.length - 1} more gateway{g.gateways.length > 2 ? 's' : ''}</p>}
    </div>
  );
}
