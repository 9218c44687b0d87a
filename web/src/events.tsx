// The event timeline: stored events from the API, then live ones from the stream.

import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { Badge } from './components/bits';
import { rowIndex } from './components/VirtualList';
import { clock } from './format';
import { hostUrl, Link } from './router';
import { fleet } from './store';
import type { TimelineEvent } from './types';
import { fileUrl, RiskBadge, riskTone } from './screens/Files';
import { beforeUrl } from './past';

export function eventTone(kind: string, detail?: Record<string, unknown> | null): string {
  if (kind.startsWith('file.')) return riskTone(detail?.risk);
  if (/died|failed|disconnected|removed|closed|unhealthy/.test(kind)) return /died|failed|unhealthy/.test(kind) ? 'bad' : 'warn';
  if (/started|connected|opened|active|healthy/.test(kind)) return 'ok';
  return 'muted';
}

function detailText(e: TimelineEvent): string {
  const d = e.detail;
  if (!d || typeof d !== 'object') return '';
  // A file's change: what the hub's rating says, and what it touches.
  if (e.kind.startsWith('file.')) {
    const affected = Array.isArray(d.affected) ? d.affected.map((a) => (typeof a === 'string' ? a : (a as { name?: string })?.name)).filter(Boolean) : [];
    return [typeof d.summary === 'string' ? d.summary : '', affected.length ? `affects ${affected.join(', ')}` : ''].filter(Boolean).join(' · ');
  }
  const parts: string[] = [];
  for (const [k, v] of Object.entries(d)) {
    if (v == null || typeof v === 'object') continue;
    const text = String(v);
    parts.push(`${k.replace(/_/g, ' ')} ${text.length > 24 ? `${text.slice(0, 12)}…` : text}`);
  }
  return parts.slice(0, 4).join(' · ');
}

const key = (e: TimelineEvent) => `${e.ts}|${e.node_id}|${e.kind}|${e.target}`;

/** One event as a table row; `index`, in a virtualised list, is its place in the whole list (aria-rowindex; the header is row 1). */
export function EventLine({ e, showHost, short, index }: { e: TimelineEvent; showHost: boolean; short?: boolean; index?: number }) {
  const node = fleet.nodes.get(e.node_id);
  const file = e.kind.startsWith('file.');
  return (
    <div class="row event-row" role="row" aria-rowindex={index == null ? undefined : rowIndex(index)} data-testid="event-row" data-kind={e.kind}>
      <span class="c-time num" role="cell" title={new Date(e.ts).toLocaleString()}>{short ? new Date(e.ts).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }) : clock(e.ts)}</span>
      <span class="c-kind" role="cell">
        <Badge text={e.kind} tone={eventTone(e.kind, e.detail)} />
      </span>
      <span class="c-name" role="cell">
        {file ? (
          <strong>
            {node ? <Link href={fileUrl(node.id, e.target)}>{e.target}</Link> : e.target} <RiskBadge risk={e.detail?.risk as string | null} />
          </strong>
        ) : (
          <strong>{e.target || '—'}</strong>
        )}
        {node && !short && (
          <Link href={beforeUrl(node.id, e.ts)} class="before-link" data-testid="what-changed-before" aria-label={`What changed before this: ${e.kind} ${e.target} on ${node.hostname}`}>
            What changed before this
          </Link>
        )}
        <small class="sub">{detailText(e)}</small>
      </span>
      {showHost && <span class="c-host" role="cell">{node ? <Link href={hostUrl(node.id, 'events')}>{node.hostname}</Link> : <span class="muted">{e.node_id}</span>}</span>}
    </div>
  );
}

export interface Timeline {
  events: TimelineEvent[];
  loading: boolean;
  error: string;
  more: boolean;
  loadOlder: () => void;
  reload: () => void;
}

/** Stored events (newest first), with live ones prepended as they arrive. */
export function useTimeline(node?: string, limit = 200): Timeline {
  const [stored, setStored] = useState<TimelineEvent[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState('');
  const [more, setMore] = useState(false);
  const [gen, setGen] = useState(0);

  useEffect(() => {
    let live = true;
    setLoading(true);
    setError('');
    api.events(undefined, limit, node).then(
      (evs) => {
        if (!live) return;
        setStored(evs);
        setMore(evs.length === limit);
        setLoading(false);
      },
      (err) => {
        if (!live) return;
        setError(err.message);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [node, limit, gen]);

  const newest = stored.length ? stored[0].ts : 0;
  const seen = new Set(stored.slice(0, 50).map(key));
  const liveOnes = fleet.liveEvents.filter((e) => (!node || e.node_id === node) && e.ts >= newest && !seen.has(key(e)));
  const events = liveOnes.length ? [...liveOnes, ...stored] : stored;

  const loadOlder = () => {
    const oldest = stored[stored.length - 1];
    if (!oldest) return;
    api.events(oldest.ts, limit, node).then(
      (evs) => {
        setStored((s) => [...s, ...evs]);
        setMore(evs.length === limit);
      },
      (err) => setError(err.message),
    );
  };
  return { events, loading, error, more, loadOlder, reload: () => setGen((g) => g + 1) };
}
