// Small shared pieces: status dots, badges, empty and error states.

import type { ComponentChildren } from 'preact';
import type { SourceStatus } from '../types';

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

export function Meter({ value, label }: { value: number | null; label: string }) {
  const v = value == null ? 0 : Math.max(0, Math.min(100, value));
  const tone = v >= 90 ? 'bad' : v >= 75 ? 'warn' : 'ok';
  return (
    <span class={`meter ${tone}`} role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(v)}>
      <span style={{ width: `${v}%` }} />
    </span>
  );
}
