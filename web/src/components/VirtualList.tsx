// A list that renders only the rows in view (plus a few), so 10,000
// containers scroll as smoothly as ten. Rows have one fixed height.
//
// It is the body (role=rowgroup) of a role=table whose header is row 1: the
// table says how many rows there really are (aria-rowcount = items + 1) and
// each rendered row its place (aria-rowindex = index + 2, `rowIndex` below),
// so a screen reader knows the whole length of a list it only partly sees.

import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';

interface Props<T> {
  items: T[];
  rowHeight: number;
  row: (item: T, index: number) => ComponentChildren;
  label: string;
  testId?: string;
  overscan?: number;
}

/** The aria-rowindex of item `index` in a table whose first row is the header. */
export const rowIndex = (index: number) => index + 2;

/** The aria-rowcount of a table of `n` items under one header row. */
export const rowCount = (n: number) => n + 1;

export function VirtualList<T>({ items, rowHeight, row, label, testId, overscan = 6 }: Props<T>) {
  const ref = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 600 });

  useLayoutEffect(() => {
    const el = ref.current!;
    let frame = 0;
    const measure = () => {
      frame = 0;
      setView({ top: el.scrollTop, height: el.clientHeight || 600 });
    };
    const onScroll = () => {
      if (!frame) frame = requestAnimationFrame(measure);
    };
    measure();
    el.addEventListener('scroll', onScroll, { passive: true });
    const ro = new ResizeObserver(onScroll);
    ro.observe(el);
    return () => {
      el.removeEventListener('scroll', onScroll);
      ro.disconnect();
      cancelAnimationFrame(frame);
    };
  }, []);

  // A shorter list (filtered) may leave the scroll position past its end.
  useEffect(() => {
    const el = ref.current!;
    if (el.scrollTop > items.length * rowHeight) el.scrollTop = 0;
  }, [items.length, rowHeight]);

  const first = Math.max(0, Math.floor(view.top / rowHeight) - overscan);
  const last = Math.min(items.length, Math.ceil((view.top + view.height) / rowHeight) + overscan);
  const rows: ComponentChildren[] = [];
  for (let i = first; i < last; i++) rows.push(row(items[i], i));

  return (
    <div ref={ref} class="vlist" role="rowgroup" aria-label={label} data-testid={testId} data-count={items.length}>
      <div class="vlist-inner" role="presentation" style={{ height: `${items.length * rowHeight}px` }}>
        <div class="vlist-rows" role="presentation" style={{ transform: `translateY(${first * rowHeight}px)` }}>
          {rows}
        </div>
      </div>
    </div>
  );
}
