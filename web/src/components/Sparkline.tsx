// A tiny line chart on a canvas: cheap enough for every visible row.

import { useLayoutEffect, useRef } from 'preact/hooks';

interface Props {
  values: number[];
  /** Fixed top of the scale (100 for percentages); otherwise the largest value. */
  max?: number;
  kind: 'cpu' | 'mem' | 'net';
  label: string;
  width?: number;
  height?: number;
}

const colours: Record<string, string> = {};

function colour(kind: string): string {
  const theme = document.documentElement.dataset.theme || '';
  const key = `${kind}/${theme}`;
  if (!colours[key]) colours[key] = getComputedStyle(document.documentElement).getPropertyValue(`--c-${kind}`).trim() || '#3b82f6';
  return colours[key];
}

export function Sparkline({ values, max, kind, label, width = 96, height = 26 }: Props) {
  const ref = useRef<HTMLCanvasElement>(null);
  const drawn = useRef('');
  const last = values.length ? values[values.length - 1] : null;
  useLayoutEffect(() => {
    const c = ref.current!;
    // Rows re-render whenever any host changes; redraw only when this line did.
    const key = `${values.length}|${values[0]}|${last}|${max}|${width}|${document.documentElement.dataset.theme}`;
    if (key === drawn.current) return;
    drawn.current = key;
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== width * dpr) {
      c.width = width * dpr;
      c.height = height * dpr;
    }
    const ctx = c.getContext('2d')!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const n = values.length;
    if (n < 1) return;
    let top = max ?? 0;
    if (max == null) for (const v of values) if (v > top) top = v;
    if (top <= 0) top = 1;
    // Few samples still fill a readable part of the line (a quarter at least).
    const step = width / Math.max(n - 1, 14);
    const x0 = width - (n - 1) * step;
    const y = (v: number) => height - 1.5 - (Math.min(v, top) / top) * (height - 3);
    const stroke = colour(kind);
    ctx.beginPath();
    ctx.moveTo(x0, y(values[0]));
    for (let i = 1; i < n; i++) ctx.lineTo(x0 + i * step, y(values[i]));
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = stroke;
    ctx.lineJoin = 'round';
    ctx.stroke();
    ctx.lineTo(x0 + (n - 1) * step, height);
    ctx.lineTo(x0, height);
    ctx.closePath();
    ctx.globalAlpha = 0.15;
    ctx.fillStyle = stroke;
    ctx.fill();
    ctx.globalAlpha = 1;
  });
  return (
    <canvas
      ref={ref}
      class="spark"
      width={width}
      height={height}
      style={{ width: `${width}px`, height: `${height}px` }}
      role="img"
      aria-label={`${label}${last == null ? '' : `, latest ${Math.round(last)}`}`}
      data-kind={kind}
    />
  );
}

/** Forget cached colours (after a theme change). */
export function resetSparkColours() {
  for (const k of Object.keys(colours)) delete colours[k];
}
