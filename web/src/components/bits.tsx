// Small shared pieces: status dots, badges, empty and error states.

import type { ComponentChildren } from 'preact';
import { cap } from '../format';
import { hostUrl, Link, setQuery } from '../router';
import type { HostSummary, SourceStatus } from '../types';

export function Dot({ up, label }: { up: boolean; label?: string }) {
  return <span class={`dot ${up ? 'up' : 'down'}`} role="img" aria-label={label ?? (up ? 'up' : 'down')} data-testid="conn" data-connected={String(up)} />;
}

const STATE_TONE: Record<string, string> = {
  running: 'ok', active: 'ok', exited: 'muted', inactive: 'muted', created: 'muted',
  paused: 'warn', restarting: 'warn', activating: 'warn', deactivating: 'warn', reloading: 'warn',
  dead: 'bad', failed: 'bad', unhealthy: 'bad', healthy: 'ok', starting: 'warn',
};

export function Badge({ text, tone }: { text: string; tone?: string }) {
  return <span class={`badge ${tone ?? STATE_TONE[text] ?? 'muted'}`}>{text}</span>;
}

export function Empty({ title, children, testId = 'empty' }: { title: string; children?: ComponentChildren; testId?: string }) {
  return (
    <div class="empty" data-testid={testId} role="status">
      <strong>{title}</strong>
      {children && <p>{children}</p>}
    </div>
  );
}

export function ErrorBox({ message, retry }: { message: string; retry?: () => void }) {
  return (
    <div class="error-box" role="alert" data-testid="error">
      <strong>Something went wrong</strong>
      <p>{message}</p>
      {retry && (
        <button type="button" class="btn" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** "source unavailable" with the agent's reason, wherever a source could not run. */
export function SourceUnavailable({ source }: { source: SourceStatus | undefined }) {
  if (!source || source.available) return null;
  return (
    <div class="unavailable" role="note" data-testid="source-unavailable" data-source={source.name}>
      <strong>Source unavailable: {source.name}</strong>
      <span>{source.reason || 'the agent gave no reason'}</span>
    </div>
  );
}

/** One source unavailable on some hosts of the fleet: how many, the first three with their reasons. */
export function FleetSourceUnavailable({ source, noun, nodes }: { source: string; noun: string; nodes: HostSummary[] }) {
  const reason = (n: HostSummary) => n.sources_down?.find((s) => s.name === source);
  const down = nodes.filter(reason);
  if (down.length === 0) return null;
  return (
    <div class="unavailable" role="note" data-testid="source-unavailable" data-source={source}>
      <strong>
        {noun} source unavailable on {down.length} host{down.length > 1 ? 's' : ''}
      </strong>
      <span>
        {down.slice(0, 3).map((n, i) => (
          <span key={n.id}>
            {i > 0 && ', '}
            <Link href={hostUrl(n.id, source)}>{n.hostname}</Link>: {reason(n)?.reason || 'no reason given'}
          </span>
        ))}
        {down.length > 3 ? ` and ${down.length - 3} more` : ''}
      </span>
    </div>
  );
}

/** Filter chips that set one query parameter (`all` clears it), with counts if given. */
export function FilterChips({ label, param, options, value, counts, testId }: {
  label: string;
  param: string;
  options: string[];
  value: string;
  counts?: Record<string, number>;
  testId?: (option: string) => string;
}) {
  return (
    <div class="chips" role="group" aria-label={label}>
      {options.map((k) => (
        <button key={k} type="button" class={`chip${value === k ? ' on' : ''}`} aria-pressed={value === k} onClick={() => setQuery({ [param]: k === 'all' ? null : k })} data-testid={testId?.(k)}>
          {cap(k)}
          {counts && <> <span class="chip-n">{counts[k]}</span></>}
        </button>
      ))}
    </div>
  );
}

export function Meter({ value, label }: { value: number | null; label: string }) {
  const v = value == null ? 0 : Math.max(0, Math.min(100, value));
  const tone = v >= 90 ? 'bad' : v >= 75 ? 'warn' : 'ok';
  return (
    <span class={`meter ${tone}`} role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(v)}>
      <span style={{ width: `${v}%` }} />
    </span>
  );
}
