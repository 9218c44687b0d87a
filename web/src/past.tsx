// The twin's past (docs/past.md): a time control that picks a moment (the
// `at` query parameter, unix ms), a host as it was then, and what changed
// between two moments.

import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api';
import { Empty, ErrorBox } from './components/bits';
import { clock } from './format';
import { Link, setQuery } from './router';
import type { NodeChanges, PastNodeView } from './types';

const HOUR = 3600e3;
/** The spans the slider can cover, back from now. */
const SPANS: { key: string; label: string; ms: number }[] = [
  { key: '15m', label: '15 min', ms: HOUR / 4 },
  { key: '1h', label: '1 hour', ms: HOUR },
  { key: '6h', label: '6 hours', ms: 6 * HOUR },
  { key: '24h', label: '24 hours', ms: 24 * HOUR },
  { key: '7d', label: '7 days', ms: 7 * 24 * HOUR },
];

/** The moment in the URL (`?at=`), or null for live. */
export function pastMoment(query: URLSearchParams): number | null {
  const at = Number(query.get('at'));
  return Number.isFinite(at) && at > 0 ? at : null;
}

/** A host page showing what changed between two moments (to: now when absent). */
export function changesUrl(node: string, from: number, to?: number | null): string {
  const q = new URLSearchParams({ tab: 'changes', from: String(Math.round(from)) });
  if (to != null) q.set('to', String(Math.round(Math.min(to, Date.now()))));
  return `/hosts/${encodeURIComponent(node)}?${q}`;
}

/** "What changed before this": the hour before `ts`, up to a few seconds after it (the journal stamps a change when it writes it, once a second). */
export function beforeUrl(node: string, ts: number): string {
  return changesUrl(node, ts - HOUR, ts + 5000);
}

/** A `datetime-local` value (local time) for `ms`, and back. */
function localInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * Drag (or arrow-key) back to any moment of the last span, bounded by where
 * the record starts; or type one; "Live" returns. The moment goes into the
 * URL (`at`) once the slider rests, so every panel of the page reads it.
 */
export function TimeControl({ at, start, label, onEngage }: { at: number | null; start?: number | null; label: string; onEngage?: () => void }) {
  const [now, setNow] = useState(Date.now());
  const [span, setSpan] = useState(() => SPANS.find((s) => at != null && s.ms >= Date.now() - at) ?? SPANS[1]);
  const [drag, setDrag] = useState<number | null>(null);
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), 5000);
    return () => {
      window.clearInterval(t);
      window.clearTimeout(timer.current);
    };
  }, []);
  const min = Math.min(now - 1000, Math.max(now - span.ms, start ?? 0));
  const step = Math.max(1000, Math.round((now - min) / 1000 / 600) * 1000);
  const commit = (v: number | null) => {
    window.clearTimeout(timer.current);
    setDrag(null);
    // The last step of the slider is now: live.
    setQuery({ at: v == null || v >= Math.max(now, Date.now() - 5000) - step ? null : String(Math.round(v)) });
  };
  const shown = drag ?? at;
  return (
    <div class={`time-control${at != null ? ' past' : ''}`} role="group" aria-label={`${label}: time`} data-testid="time-control" data-start={start ?? ''} onPointerEnter={onEngage} onFocusIn={onEngage}>
      <button type="button" class={`btn btn-small${at == null ? ' btn-primary' : ''}`} aria-pressed={at == null} onClick={() => commit(null)} data-testid="time-live">
        Live
      </button>
      <input
        type="range"
        class="time-slider"
        min={min}
        max={now}
        step={step}
        value={Math.max(min, shown ?? now)}
        aria-label={`Moment to show ${label} at`}
        aria-valuetext={shown == null ? 'now' : new Date(shown).toLocaleString()}
        onInput={(e) => {
          const v = Number(e.currentTarget.value);
          setDrag(v);
          // Keys move one step at a time: show the moment once they rest.
          window.clearTimeout(timer.current);
          timer.current = window.setTimeout(() => commit(v), 400);
        }}
        onChange={(e) => commit(Number(e.currentTarget.value))}
        data-testid="time-slider"
        data-min={min}
        data-max={now}
      />
      <span class="time-shown num" aria-live="polite" data-testid="time-shown">
        {shown == null ? 'now' : clock(shown)}
      </span>
      <label class="time-input">
        <span class="muted small">at (local time)</span>
        <input
          type="datetime-local"
          step={1}
          value={shown == null ? '' : localInput(shown)}
          max={localInput(now)}
          onChange={(e) => {
            const v = new Date(e.currentTarget.value).getTime();
            if (Number.isFinite(v)) commit(Math.min(v, Date.now()));
          }}
          data-testid="time-input"
        />
      </label>
      <label class="time-span">
        <span class="muted small">over the last</span>
        <select value={span.key} onChange={(e) => setSpan(SPANS.find((s) => s.key === e.currentTarget.value) ?? SPANS[1])} data-testid="time-span">
          {SPANS.map((s) => (
            <option key={s.key} value={s.key}>
              {s.label}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}

/** "Showing HOST as it was at TIME — Back to live", with the compare link. */
export function PastBanner({ what, at, recorded, compare }: { what: string; at: number; recorded?: number | null; compare?: string }) {
  return (
    <div class="past-banner" role="status" data-testid="past-banner">
      <span>
        Showing <strong>{what}</strong> as it was at <strong>{new Date(at).toLocaleString()}</strong>
        {recorded != null && recorded < at - 1000 && <span class="muted"> (unchanged since {clock(recorded)})</span>}
      </span>
      <span class="spacer" />
      {compare && (
        <Link href={compare} class="btn btn-small" data-testid="compare-now">
          Compare with now
        </Link>
      )}
      <button type="button" class="btn btn-small btn-primary" onClick={() => setQuery({ at: null })} data-testid="back-to-live">
        Back to live
      </button>
    </div>
  );
}

/** A host as it was at `at` (null: nothing asked), and where its record starts. */
export function usePastNode(id: string, at: number | null) {
  const [state, setState] = useState<{ node: PastNodeView | null; error: string; loading: boolean }>({ node: null, error: '', loading: false });
  const [start, setStart] = useState<number | null>(null);
  const asked = useRef('');
  // Where the record starts bounds the time control: one read of the host
  // as it is, once someone reaches for the control (not on every visit).
  const engage = () => {
    if (asked.current === id) return;
    asked.current = id;
    api.nodeAt(id, Date.now()).then(
      (n) => setStart(n.first_recorded),
      () => undefined,
    );
  };
  useEffect(() => {
    if (at == null) {
      setState({ node: null, error: '', loading: false });
      return;
    }
    let live = true;
    setState((s) => ({ ...s, error: '', loading: true }));
    api.nodeAt(id, at).then(
      (node) => {
        if (!live) return;
        setState({ node, error: '', loading: false });
        setStart(node.first_recorded);
      },
      (err) => live && setState({ node: null, error: err.message, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [id, at]);
  return { ...state, start, engage };
}

/** What changed on a host from `from` to `to` (now when null), per subject with every step. */
export function ChangeList({ node, hostname, from, to }: { node: string; hostname: string; from: number; to: number | null }) {
  const [list, setList] = useState<NodeChanges | null>(null);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    let live = true;
    setError('');
    setList(null);
    api.nodeChanges(node, from, to).then(
      (l) => live && setList(l),
      (err) => live && setError(err.message),
    );
    return () => {
      live = false;
    };
  }, [node, from, to, gen]);
  const range = `${new Date(from).toLocaleString()} → ${to == null ? 'now' : new Date(to).toLocaleString()}`;
  return (
    <div class="panel" data-testid="section-changes">
      <div class="panel-head">
        <h2>What changed on {hostname}</h2>
        <span class="muted small" data-testid="changes-range">
          {range}
        </span>
        <span class="spacer" />
        <div class="chips" role="group" aria-label="Changes over">
          {[1, 6, 24].map((h) => (
            <button key={h} type="button" class="chip" onClick={() => setQuery({ from: String(Date.now() - h * HOUR), to: null })}>
              last {h} h
            </button>
          ))}
        </div>
      </div>
      {error ? (
        <ErrorBox message={error} retry={() => setGen((g) => g + 1)} />
      ) : !list ? (
        <p class="muted">Loading…</p>
      ) : list.subjects.length === 0 ? (
        <Empty title="Nothing changed">{list.since == null ? 'Nothing was recorded for this host by then.' : 'The containers, units, ports, files and routes were the same all along.'}</Empty>
      ) : (
        <ul class="change-list" aria-label={`Changes on ${hostname}`}>
          {list.subjects.map((s) => (
            <li key={s.subject} data-testid="change-subject" data-subject={s.subject}>
              <div class="change-head">
                <strong class="mono">{s.subject}</strong> <span>{s.summary}</span>
              </div>
              <ol class="change-steps">
                {s.transitions.map((t, i) => (
                  <li key={i} data-testid="change-step">
                    <Link href={`/hosts/${encodeURIComponent(node)}?at=${t.ts}`} class="num" title="Show the host as it was then">
                      {clock(t.ts)}
                    </Link>{' '}
                    {t.change}
                  </li>
                ))}
              </ol>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
