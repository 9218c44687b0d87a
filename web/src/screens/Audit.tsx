// The audit trail (admins): who did what, from where, newest first; filtered
// on the hub by actor, action prefix and outcome, searched here within what
// is loaded, older pages on demand. Each entry shows its chain hash.

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { Badge, Empty, ErrorBox, FilterChips } from '../components/bits';
import { clock } from '../format';
import { Link, screenHref, setQuery } from '../router';
import type { AuditEntry } from '../types';

/** Entries per page (`?limit=` overrides, 1 to 1000). */
const PAGE = 100;
const ACTIONS: { value: string; label: string }[] = [
  { value: '', label: 'All actions' },
  { value: 'session.', label: 'Sessions (sign-in, sign-out)' },
  { value: 'user.', label: 'Users' },
  { value: 'api_token.', label: 'API tokens' },
  { value: 'join_token.', label: 'Join tokens' },
  { value: 'node.', label: 'Nodes (enrollment)' },
];
const OUTCOMES = ['all', 'ok', 'denied', 'failed'];
const OUTCOME_TONE: Record<string, string> = { ok: 'ok', denied: 'bad', failed: 'warn' };

export const shortHash = (h: string) => (h ? h.slice(0, 10) : '—');

function matches(e: AuditEntry, q: string): boolean {
  if (!q) return true;
  return [e.actor, e.action, e.target, e.detail, e.address, e.user_agent, e.outcome, e.hash].some((f) => f.toLowerCase().includes(q));
}

export function Audit({ query }: { query: URLSearchParams }) {
  const actor = query.get('actor') || '';
  const action = query.get('action') || '';
  const outcome = query.get('outcome') || '';
  const q = (query.get('q') || '').toLowerCase();
  const limit = Math.max(1, Math.min(1000, Math.floor(Number(query.get('limit'))) || PAGE));
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [loading, setLoading] = useState(true);
  const [older, setOlder] = useState(false);
  const [error, setError] = useState('');
  const [more, setMore] = useState(false);
  const [gen, setGen] = useState(0);
  const [actorText, setActorText] = useState(actor);

  useEffect(() => setActorText(actor), [actor]);

  useEffect(() => {
    let live = true;
    setLoading(true);
    setError('');
    api.audit({ actor, action, outcome, limit }).then(
      (es) => {
        if (!live) return;
        setEntries(es);
        setMore(es.length === limit);
        setLoading(false);
      },
      (err) => {
        if (!live) return;
        setError((err as Error).message);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [actor, action, outcome, limit, gen]);

  const loadOlder = async () => {
    const last = entries[entries.length - 1];
    if (!last) return;
    setOlder(true);
    try {
      const es = await api.audit({ actor, action, outcome, limit, before: last.id });
      setEntries((cur) => [...cur, ...es]);
      setMore(es.length === limit);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setOlder(false);
    }
  };

  const rows = entries.filter((e) => matches(e, q));
  const filtered = !!(actor || action || outcome || q);

  return (
    <section class="screen" aria-labelledby="audit-title">
      <div class="screen-head">
        <h1 id="audit-title">Audit trail</h1>
        <span class="muted" data-testid="audit-count">
          {loading ? 'loading…' : `${rows.length} entr${rows.length === 1 ? 'y' : 'ies'}${more ? ' (more older)' : ''}`}
        </span>
        <button type="button" class="btn btn-small" onClick={() => setGen((g) => g + 1)} data-testid="audit-refresh">
          Refresh
        </button>
      </div>
      <div class="toolbar" role="search">
        <input type="search" placeholder="Search loaded entries…  ( / )" aria-label="Search the loaded entries" value={query.get('q') || ''} onInput={(e) => setQuery({ q: e.currentTarget.value })} data-testid="audit-search" />
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            setQuery({ actor: actorText.trim() });
          }}
        >
          <input
            type="text"
            placeholder="Actor (exact)"
            aria-label="Actor (exact name, token:ID or node id); Enter applies"
            value={actorText}
            onInput={(e) => setActorText(e.currentTarget.value)}
            onChange={(e) => setQuery({ actor: e.currentTarget.value.trim() })}
            data-testid="audit-actor"
          />
        </form>
        <select aria-label="Action" value={action} onChange={(e) => setQuery({ action: e.currentTarget.value })} data-testid="audit-action">
          {ACTIONS.map((a) => (
            <option key={a.value} value={a.value}>
              {a.label}
            </option>
          ))}
        </select>
        <FilterChips label="Outcome" param="outcome" options={OUTCOMES} value={outcome || 'all'} testId={(o) => `audit-outcome-${o}`} />
      </div>
      {error && entries.length === 0 ? (
        <ErrorBox message={error} retry={() => setGen((g) => g + 1)} />
      ) : loading && entries.length === 0 ? (
        <p class="muted">Loading the audit trail…</p>
      ) : rows.length === 0 ? (
        <Empty title={filtered ? 'No entry matches' : 'The audit trail is empty'} testId="audit-empty">
          {filtered ? 'Change the search or the filters.' : 'Sign-ins, account and token changes and enrollments are recorded here.'}
        </Empty>
      ) : (
        <>
          {error && <ErrorBox message={error} />}
          <div class="table-scroll panel flush">
            <table class="simple audit cards" data-testid="audit-table">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Address</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Detail</th>
                  <th scope="col">Hash</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((e) => (
                  <tr key={e.id} data-testid="audit-row" data-id={e.id} data-action={e.action} data-actor={e.actor} data-outcome={e.outcome} data-target={e.target} class={e.outcome === 'ok' ? '' : 'is-bad'}>
                    <td class="num nowrap" title={new Date(e.ts).toLocaleString()}>
                      {clock(e.ts)}
                    </td>
                    <td>
                      {e.actor && e.actor !== '-' && e.actor !== actor ? (
                        <Link href={screenHref('/audit', { actor: e.actor })} title={`Only ${e.actor}`} data-testid="audit-actor-link">
                          <strong>{e.actor}</strong>
                        </Link>
                      ) : (
                        <strong>{e.actor || '—'}</strong>
                      )}
                      <small class="sub">{e.actor_kind}</small>
                    </td>
                    <td class="mono small" title={e.user_agent || undefined}>
                      {e.address || '—'}
                    </td>
                    <td>
                      <code>{e.action}</code>
                    </td>
                    <td>{e.target || <span class="muted">—</span>}</td>
                    <td>
                      <Badge text={e.outcome} tone={OUTCOME_TONE[e.outcome] ?? 'muted'} />
                    </td>
                    <td class="detail">{e.detail || <span class="muted">—</span>}</td>
                    <td class="mono small muted" title={`#${e.id} hash ${e.hash}\nprevious ${e.prev_hash}`} data-testid="audit-hash">
                      {shortHash(e.hash)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {more && (
            <button type="button" class="btn load-older" onClick={loadOlder} disabled={older} data-testid="audit-older">
              {older ? 'Loading…' : 'Load older entries'}
            </button>
          )}
        </>
      )}
    </section>
  );
}
