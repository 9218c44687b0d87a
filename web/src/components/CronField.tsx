// A cron pattern and its time zone, with the helper below them: the next
// five runs as the hub computes them (POST /api/v1/schedules/preview), in
// that zone, asked again as the pattern is typed; a pattern the hub refuses
// (bad syntax, never fires) shows its reason. Used by the Schedules screen's
// form and the Backups screen's "on a schedule".

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { inZone, type Preview, schedulesApi } from '../screens/SchedulesApi';

/** The browser's time zone (a new pattern's default). */
export function localZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** The next five runs of a pattern, from the hub, as it is typed. */
export function CronPreview({ cron, timezone }: { cron: string; timezone: string }) {
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    if (!cron.trim() || !timezone.trim()) {
      setPreview(null);
      setError('');
      return;
    }
    let live = true;
    const t = setTimeout(() => {
      schedulesApi.preview(cron, timezone).then(
        (p) => live && (setPreview(p), setError('')),
        (e) => live && (setPreview(null), setError((e as Error).message)),
      );
    }, 250);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [cron, timezone]);
  if (error)
    return (
      <p class="form-error" role="alert" data-testid="cron-error">
        {error}
      </p>
    );
  if (!preview) return null;
  return (
    <div class="cron-helper" data-testid="cron-preview">
      <strong>Next runs ({preview.timezone})</strong>
      <ol>
        {preview.next_runs_ms.map((ms) => (
          <li key={ms} data-testid="cron-next" data-ms={ms}>
            {inZone(ms, preview.timezone)}
          </li>
        ))}
      </ol>
    </div>
  );
}

/**
 * The pattern and zone inputs on one row (with `children` after them, e.g. a
 * name), then the preview. `testId` prefixes the inputs' test ids
 * (`${testId}-cron`, `${testId}-tz`), `suffix` ends them.
 */
export function CronField({
  cron,
  timezone,
  onCron,
  onTimezone,
  testId,
  suffix = '',
  children,
}: {
  cron: string;
  timezone: string;
  onCron: (v: string) => void;
  onTimezone: (v: string) => void;
  testId: string;
  suffix?: string;
  children?: ComponentChildren;
}) {
  return (
    <>
      <div class="form form-row">
        <label class="field">
          Cron (minute hour day month weekday)
          <input class="mono" value={cron} onInput={(e) => onCron(e.currentTarget.value)} required spellcheck={false} data-testid={`${testId}-cron${suffix}`} />
        </label>
        <label class="field">
          Time zone
          <input value={timezone} onInput={(e) => onTimezone(e.currentTarget.value)} required spellcheck={false} data-testid={`${testId}-tz${suffix}`} />
        </label>
        {children}
      </div>
      <CronPreview cron={cron} timezone={timezone} />
    </>
  );
}
