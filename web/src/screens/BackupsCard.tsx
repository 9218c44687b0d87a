// The overview's card for scheduled work and backups: failing schedules
// named (a backup that stopped working is found the day it stops, not months
// later) and the newest backup. Shown once there is a schedule or a backup.

import { useEffect } from 'preact/hooks';
import { Badge } from '../components/bits';
import { ago } from '../format';
import { hostUrl, Link } from '../router';
import { fleet } from '../store';
import { useLoad } from '../useLoad';
import { type BackupRecord, backupsApi } from './BackupsApi';
import { type Schedule, schedulesApi } from './SchedulesApi';

const SHOWN = 5;
const REFRESH_MS = 60_000;

export function BackupsCard() {
  const data = useLoad<[Schedule[], BackupRecord[]]>(() => Promise.all([schedulesApi.list(), backupsApi.list(1)]), []);
  useEffect(() => {
    const t = setInterval(data.reload, REFRESH_MS);
    return () => clearInterval(t);
  }, []);
  if (!data.data) return null;
  const [schedules, newest] = data.data;
  if (schedules.length === 0 && newest.length === 0) return null;
  const failing = schedules.filter((s) => s.schedule_error || (s.last_outcome && !['ok', 'running'].includes(s.last_outcome)));
  const b = newest[0];
  return (
    <div class="panel" data-testid="backups-card" data-failing={failing.length}>
      <h2>
        Schedules and backups <Link href="/backups" class="more">backups →</Link>
      </h2>
      {failing.length === 0 ? (
        <p class="muted">
          {schedules.length} schedule{schedules.length === 1 ? '' : 's'}, none failing.
        </p>
      ) : (
        <ul class="attn-list">
          {failing.slice(0, SHOWN).map((s) => (
            <li key={s.id}>
              <Badge text={s.schedule_error ? 'error' : (s.last_outcome || '').replace('_', ' ')} tone="bad" />
              <Link href={(s.command as { op?: string }).op === 'backup' ? '/backups' : '/schedules'}>{s.name}</Link>
              <span class="muted">{s.schedule_error || `last run ${ago(s.last_run_ms)}`}</span>
            </li>
          ))}
          {failing.length > SHOWN ? (
            <li class="more-line">
              <Link href="/schedules">and {failing.length - SHOWN} more failing schedules →</Link>
            </li>
          ) : null}
        </ul>
      )}
      <p class="muted" data-testid="backups-newest">
        {b ? (
          <>
            Newest backup: <strong>{b.job}</strong> on <Link href={hostUrl(b.node_id)}>{fleet.nodes.get(b.node_id)?.hostname || b.node_id}</Link>, {ago(b.created_ms)}.
          </>
        ) : (
          'No backups yet.'
        )}
      </p>
    </div>
  );
}
