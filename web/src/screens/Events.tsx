// The fleet's timeline.

import { Empty, ErrorBox, FilterChips } from '../components/bits';
import { rowCount, VirtualList } from '../components/VirtualList';
import { EventLine, useTimeline } from '../events';
import { setQuery } from '../router';
import { fleet } from '../store';
import { useFleet } from '../useFleet';
import { PHONE, useMedia } from '../useMedia';

const KINDS = ['all', 'container', 'unit', 'port', 'file', 'agent'];

export function Events({ query }: { query: URLSearchParams }) {
  useFleet();
  const phone = useMedia(PHONE);
  const tl = useTimeline(undefined, 500);
  const q = (query.get('q') || '').toLowerCase();
  const kind = query.get('kind') || 'all';
  const rows = tl.events.filter(
    (e) =>
      (kind === 'all' || e.kind.startsWith(`${kind}.`)) &&
      (!q || e.target.toLowerCase().includes(q) || e.kind.includes(q) || (fleet.nodes.get(e.node_id)?.hostname || '').toLowerCase().includes(q)),
  );

  return (
    <section class="screen screen-fill" aria-labelledby="events-title">
      <div class="screen-head">
        <h1 id="events-title">Events</h1>
        <span class="muted" data-testid="events-count">
          {tl.loading ? 'loading…' : `${rows.length} event${rows.length === 1 ? '' : 's'}`}
        </span>
      </div>
      <div class="toolbar" role="search">
        <input type="search" placeholder="Search target, kind, host…  ( / )" aria-label="Search events" value={query.get('q') || ''} onInput={(e) => setQuery({ q: e.currentTarget.value })} data-testid="event-search" />
        <FilterChips label="Kind" param="kind" options={KINDS} value={kind} />
      </div>
      {tl.error ? (
        <ErrorBox message={tl.error} retry={tl.reload} />
      ) : tl.loading ? (
        <p class="muted">Loading the timeline…</p>
      ) : rows.length === 0 ? (
        <Empty title={tl.events.length ? 'No event matches' : 'No events yet'}>
          {tl.events.length ? 'Change the search or the kind.' : 'Containers starting and dying, units failing, ports opening and agents connecting show up here the moment they happen.'}
        </Empty>
      ) : (
        <>
          <div class="table event-table with-host" role="table" aria-label="Events" aria-rowcount={rowCount(rows.length)}>
            <div class="row head" role="row" aria-rowindex={1}>
              <span class="c-time" role="columnheader">Time</span>
              <span class="c-kind" role="columnheader">Kind</span>
              <span class="c-name" role="columnheader">Target</span>
              <span class="c-host" role="columnheader">Host</span>
            </div>
            <VirtualList items={rows} rowHeight={phone ? 72 : 44} label="Events" testId="events-list" row={(e, i) => <EventLine key={i} e={e} showHost index={i} />} />
          </div>
          {tl.more && (
            <button type="button" class="btn load-older" onClick={tl.loadOlder}>
              Load older events
            </button>
          )}
        </>
      )}
    </section>
  );
}
