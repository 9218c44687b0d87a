// A time-series chart (uPlot) that follows its container's width and the theme.

import { useEffect, useLayoutEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  kind: string; // CSS colour variable suffix: --c-<kind>
  fill?: boolean;
  dash?: boolean;
}

interface Props {
  title: string;
  testId: string;
  data: uPlot.AlignedData;
  series: ChartSeries[];
  format: (v: number) => string;
  /** Fixed top of the y scale (100 for percentages). */
  max?: number;
  theme: string;
  /** The time range shown, unix seconds (the data may cover less of it). */
  xRange: [number, number];
  height?: number;
  /** A moment to mark with a vertical line (unix ms): the past moment the page shows. */
  mark?: number | null;
}

function latest(col: (number | null)[] | undefined): number | null {
  if (!col) return null;
  for (let i = col.length - 1; i >= 0; i--) if (col[i] != null) return col[i];
  return null;
}

function cssVar(name: string, fallback: string) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function Chart({ title, testId, data, series, format, max, theme, xRange, height = 180, mark }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const xr = useRef(xRange);
  xr.current = xRange;
  const markRef = useRef(mark);
  markRef.current = mark;

  // (Re)create on mount and when the theme or the set of series changes.
  const shape = series.map((s) => s.label).join('|');
  useLayoutEffect(() => {
    const el = box.current!;
    const axis = cssVar('--muted', '#888');
    const markColour = cssVar('--warn', '#b45309');
    const grid = cssVar('--grid', 'rgba(128,128,128,.15)');
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      hooks: {
        // The moment shown: a vertical line across the plot.
        draw: [
          (u: uPlot) => {
            const m = markRef.current;
            if (m == null) return;
            const x = u.valToPos(m / 1000, 'x', true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = markColour;
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.restore();
          },
        ],
      },
      scales: { x: { time: true, range: () => xr.current }, y: max != null ? { range: [0, max] } : { range: (_u, _min, mx) => [0, mx > 0 ? mx * 1.1 : 1] } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, size: 70, values: (_u, vals) => vals.map((v) => format(v)) },
      ],
      series: [
        {
          value: (_u: uPlot, v: number | null, _si: number, idx: number | null) =>
            idx == null || v == null ? 'latest' : new Date(v * 1000).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }),
        },
        ...series.map((s) => {
          const stroke = cssVar(`--c-${s.kind}`, '#3b82f6');
          return {
            label: s.label,
            stroke,
            width: 1.5,
            dash: s.dash ? [4, 3] : undefined,
            fill: s.fill ? `${stroke}26` : undefined,
            // Away from the cursor, the legend shows the latest value.
            value: (u: uPlot, v: number | null, si: number, idx: number | null) => {
              if (idx == null) v = latest(u.data[si] as (number | null)[]);
              return v == null ? '—' : format(v);
            },
            points: { show: false },
          } as uPlot.Series;
        }),
      ],
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (w !== u.width) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, theme, max, height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data, xRange[0], xRange[1]]);

  useEffect(() => {
    plot.current?.redraw(false, false);
  }, [mark]);

  return (
    <figure class="chart" data-testid={testId} data-points={(data[0] as number[]).length} data-mark={mark ?? undefined}>
      <figcaption>{title}</figcaption>
      <div ref={box} class="chart-box" />
    </figure>
  );
}
