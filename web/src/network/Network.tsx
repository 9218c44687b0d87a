// The network map (/network): the fleet as a graph, internet on the left,
// hosts on the right (layout.ts), drawn in SVG. Loaded on first use (its
// own chunk). Live: the stream sends the topology once and then its diffs
// (links' loads included); no reload. Scales to 500 hosts and 10,000 containers:
// children are folded into their hosts (a count, and chips once zoomed
// in), only what is near the viewport is drawn, labels only when legible,
// and panning moves one transform without re-rendering.

import type { VNode } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { Empty, ErrorBox } from '../components/bits';
import { hostUrl, Link, setQuery } from '../router';
import { fleet } from '../store';
import { watchTopology } from '../stream';
import type { Impact, Topology, TopoEdge, TopoNode } from '../types';
import { CHIP, CHIP_PITCH, CHIP_X0, CHIP_X1, layout, type Layout, type Placed } from './layout';
import './network.css';
import { PastBanner, pastMoment, TimeControl } from '../past';

const POS_KEY = 'twinbay.network.positions';
/** Below this zoom, labels are not drawn (they would be unreadable). */
const LABEL_K = 0.35;
/** From this zoom on, a collapsed host's containers, units and ports are drawn as chips. */
export const DETAIL_K = 1.2;
const MIN_K = 0.01;
const MAX_K = 4;
/** Take a new graph at most this often while the topology changes. */
const DEBOUNCE_MS = 300;

/** Until when the user is panning, zooming or dragging: a new topology waits until then (no layout mid-gesture). */
let busyUntil = 0;
const busy = () => {
  busyUntil = performance.now() + 400;
};

interface View {
  x: number;
  y: number;
  k: number;
}

function loadPositions(): Map<string, [number, number]> {
  try {
    const raw = JSON.parse(localStorage.getItem(POS_KEY) || '{}') as Record<string, [number, number]>;
    return new Map(Object.entries(raw).filter(([, v]) => Array.isArray(v) && v.length === 2 && v.every(Number.isFinite)));
  } catch {
    return new Map();
  }
}

function savePositions(m: Map<string, [number, number]>) {
  try {
    if (m.size) localStorage.setItem(POS_KEY, JSON.stringify(Object.fromEntries(m)));
    else localStorage.removeItem(POS_KEY);
  } catch {
    /* storage full or disabled: positions last for this page */
  }
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function bits(bps: number | undefined): string {
  if (bps == null || !Number.isFinite(bps)) return '';
  const u = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  let i = 0;
  let v = bps;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${u[i]}`;
}

/** What an edge says about its load: a share of the link, or "speed unknown" (never a made-up 0 %). */
function loadText(e: TopoEdge): string {
  if (e.utilisation == null) return e.bps != null ? `${bits(e.bps)}, speed unknown` : 'speed unknown';
  return `${Math.round(e.utilisation * 100)} % of the link${e.bps != null ? ` (${bits(e.bps)})` : ''}`;
}

function loadClass(e: TopoEdge): string {
  if (e.kind !== 'uplink') return 'e-plain';
  if (e.utilisation == null) return 'e-unknown';
  return e.utilisation >= 0.85 ? 'e-high' : e.utilisation >= 0.6 ? 'e-mid' : 'e-low';
}

const KIND_TAB: Partial<Record<TopoNode['kind'], string>> = { container: 'containers', unit: 'units', port: 'ports' };
const KIND_NAME: Record<TopoNode['kind'], string> = {
  internet: 'Internet', gateway: 'Gateway', proxy: 'Reverse proxy', route: 'Route', container: 'Container', unit: 'Unit', port: 'Port', host: 'Host',
};

function counts(kids: TopoNode[] | undefined): string {
  if (!kids?.length) return '';
  const c = { container: 0, unit: 0, port: 0 } as Record<string, number>;
  for (const k of kids) c[k.kind] = (c[k.kind] || 0) + 1;
  const parts = [];
  if (c.container) parts.push(`${c.container} container${c.container === 1 ? '' : 's'}`);
  if (c.unit) parts.push(`${c.unit} unit${c.unit === 1 ? '' : 's'}`);
  if (c.port) parts.push(`${c.port} port${c.port === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

function sublabel(p: Placed, gateways: number): string {
  const n = p.node;
  if (n.kind === 'internet') return gateways ? (n.health === 'unknown' ? 'upstream unknown' : `upstream ${n.health === 'ok' ? 'up' : 'down'}`) : 'no gateway configured';
  if (n.kind === 'host') {
    const c = p.children?.filter((k) => k.kind === 'container').length ?? 0;
    const u = p.children?.filter((k) => k.kind === 'unit').length ?? 0;
    return [n.status, c ? `${c} ctr` : '', u ? `${u} units` : ''].filter(Boolean).join(' · ');
  }
  return [KIND_NAME[n.kind].toLowerCase(), n.status].filter(Boolean).join(' · ');
}

/** The elements whose label contains `q` (lower case). */
const find = (g: Topology | null, q: string) => (q && g ? g.nodes.filter((n) => n.label.toLowerCase().includes(q)) : []);

/**
 * The topology, kept current by the stream: the hub sends the whole graph
 * when this screen starts watching, then only what changed. A new graph is
 * taken at most every DEBOUNCE_MS, and never in the middle of a gesture;
 * `flush` takes the stream's graph now (a search for something that just
 * joined must not wait for the next one, nor miss it).
 */
function useTopology() {
  const [graph, setGraph] = useState<Topology | null>(() => (fleet.topology.loaded ? fleet.topology.graph() : null));
  const [error, setError] = useState('');
  const flush = useRef(() => {});
  useEffect(() => {
    let timer: number | undefined;
    let seen = -1;
    const take = (now = false) => {
      clearTimeout(timer);
      timer = undefined;
      if (!now && performance.now() < busyUntil) {
        timer = window.setTimeout(take, 200);
        return;
      }
      seen = fleet.topology.changes;
      setGraph(fleet.topology.loaded ? fleet.topology.graph() : null);
      setError('');
    };
    flush.current = () => {
      if (fleet.topology.changes !== seen) take(true);
    };
    const unwatch = watchTopology();
    const unsubscribe = fleet.subscribe(() => {
      if (fleet.topology.changes === seen || timer !== undefined) return;
      // The first graph at once; later ones coalesced.
      timer = window.setTimeout(take, seen < 0 ? 0 : DEBOUNCE_MS);
    });
    // The stream is down: say so rather than showing a graph as if live.
    const offline = window.setInterval(() => {
      if (fleet.link !== 'live' && !fleet.topology.loaded) setError('the live stream is not connected');
    }, 2000);
    return () => {
      unsubscribe();
      unwatch();
      clearTimeout(timer);
      clearInterval(offline);
      flush.current = () => {};
    };
  }, []);
  return { graph, error, flush: () => flush.current() };
}

/** The topology as it was at `at` (`GET /topology?at=`); nothing while live. */
function usePastTopology(at: number | null) {
  const [state, setState] = useState<{ graph: Topology | null; error: string }>({ graph: null, error: '' });
  useEffect(() => {
    if (at == null) {
      setState({ graph: null, error: '' });
      return;
    }
    let live = true;
    api.topologyAt(at).then(
      (graph) => live && setState({ graph, error: '' }),
      (err) => live && setState({ graph: null, error: err.message }),
    );
    return () => {
      live = false;
    };
  }, [at]);
  return state;
}

export function Network({ query }: { query: URLSearchParams }) {
  const at = pastMoment(query);
  const now = useTopology();
  const then = usePastTopology(at);
  const { graph, error } = at == null ? now : then;
  const flush = now.flush;
  const [expanded, setExpanded] = useState<Set<string>>(() => new Set());
  const [saved, setSaved] = useState(loadPositions);
  const selected = query.get('node') || '';
  const [impact, setImpact] = useState<Impact | null>(null);
  const [impactError, setImpactError] = useState('');
  const [search, setSearch] = useState('');
  const [, setTick] = useState(0);

  const svgRef = useRef<SVGSVGElement>(null);
  const gRef = useRef<SVGGElement>(null);
  const view = useRef<View>({ x: 0, y: 0, k: 1 });
  /** The world rectangle drawn at the last render (padded viewport) and the zoom it was drawn at. */
  const drawn = useRef({ x0: 0, y0: 0, x1: 0, y1: 0, k: 0 });
  const fitted = useRef(false);
  const focusNext = useRef('');
  const frame = useRef(0);
  const drag = useRef<{ id: string; p: Placed; dx: number; dy: number } | null>(null);

  const layoutMs = useRef(0);
  const lay: Layout | null = useMemo(() => {
    if (!graph) return null;
    const t0 = performance.now();
    const l = layout(graph, expanded, saved);
    layoutMs.current = performance.now() - t0;
    return l;
  }, [graph, expanded, saved]);
  const byId = useMemo(() => new Map((graph?.nodes || []).map((n) => [n.id, n])), [graph]);
  const gateways = useMemo(() => (graph?.nodes || []).filter((n) => n.kind === 'gateway').length, [graph]);
  const impacted = useMemo(() => new Set(impact?.elements || []), [impact]);
  const q = search.trim().toLowerCase();
  const matches = useMemo(() => find(graph, q), [q, graph]);
  const matchIds = useMemo(() => new Set(matches.map((n) => n.id)), [matches]);

  const rerender = () => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      setTick((t) => t + 1);
    });
  };
  useEffect(() => () => cancelAnimationFrame(frame.current), []);

  const size = () => {
    const r = svgRef.current?.getBoundingClientRect();
    return { w: r?.width || 800, h: r?.height || 600 };
  };

  /** Moves the drawing (one attribute); re-renders only when the view leaves what was drawn or the zoom changed much. */
  const applyView = () => {
    const v = view.current;
    gRef.current?.setAttribute('transform', `translate(${v.x.toFixed(1)},${v.y.toFixed(1)}) scale(${v.k.toFixed(4)})`);
    svgRef.current?.setAttribute('data-scale', v.k.toFixed(3));
    const { w, h } = size();
    const x0 = -v.x / v.k, y0 = -v.y / v.k, x1 = (w - v.x) / v.k, y1 = (h - v.y) / v.k;
    const d = drawn.current;
    const ratio = v.k / (d.k || 1);
    const crosses = (t: number) => (d.k < t) !== (v.k < t);
    if (x0 < d.x0 || y0 < d.y0 || x1 > d.x1 || y1 > d.y1 || ratio > 1.6 || ratio < 0.6 || crosses(LABEL_K) || crosses(DETAIL_K)) rerender();
  };

  const centreOn = (x: number, y: number, k = view.current.k) => {
    const { w, h } = size();
    view.current = { k, x: w / 2 - x * k, y: h / 2 - y * k };
    applyView();
  };

  const fit = () => {
    if (!lay) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const p of lay.nodes) {
      x0 = Math.min(x0, p.x);
      x1 = Math.max(x1, p.x + p.w);
      y0 = Math.min(y0, p.y - p.h / 2);
      y1 = Math.max(y1, p.y + p.h / 2);
    }
    if (!Number.isFinite(x0)) return;
    const { w, h } = size();
    const k = Math.max(MIN_K, Math.min(1.5, (w - 40) / (x1 - x0), (h - 40) / (y1 - y0)));
    centreOn((x0 + x1) / 2, (y0 + y1) / 2, k);
  };

  const zoomAt = (sx: number, sy: number, k: number) => {
    const v = view.current;
    const nk = Math.max(MIN_K, Math.min(MAX_K, k));
    view.current = { k: nk, x: sx - ((sx - v.x) / v.k) * nk, y: sy - ((sy - v.y) / v.k) * nk };
    applyView();
  };

  // First view: everything if it is legible at that size, else the full width around the internet.
  useEffect(() => {
    if (!lay || fitted.current) return;
    fitted.current = true;
    if (selected) focusNext.current = selected;
    fit();
    const { w } = size();
    if (view.current.k < LABEL_K) {
      // Too narrow for every column (a phone): the hosts' end, the right edge in view.
      const k = Math.max(LABEL_K, Math.min(1, (w - 40) / lay.width));
      const inet = lay.byId.get('internet');
      centreOn(Math.max(lay.width / 2, lay.width - (w / 2 - 12) / k), inet ? inet.y : lay.height / 2, k);
    }
  }, [lay]);

  // A search hit (or a selection from the URL) inside a collapsed host: expand it, then centre on it.
  useEffect(() => {
    const id = focusNext.current;
    if (!id || !lay) return;
    const p = lay.byId.get(id);
    if (!p) {
      const host = lay.folded.get(id);
      if (host) setExpanded((s) => new Set(s).add(host));
      return;
    }
    focusNext.current = '';
    centreOn(p.x + p.w / 2, p.y, Math.max(view.current.k, 0.9));
  }, [lay]);

  // Wheel zoom (a non-passive listener: the page must not scroll) and a resize redraws.
  useEffect(() => {
    const svg = svgRef.current;
    if (!svg) return;
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      busy();
      const r = svg.getBoundingClientRect();
      zoomAt(e.clientX - r.left, e.clientY - r.top, view.current.k * Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)));
    };
    svg.addEventListener('wheel', onWheel, { passive: false });
    const ro = new ResizeObserver(() => applyView());
    ro.observe(svg);
    return () => {
      svg.removeEventListener('wheel', onWheel);
      ro.disconnect();
    };
  }, [svgRef.current]);

  // The impact belongs to the selected element.
  useEffect(() => {
    setImpact(null);
    setImpactError('');
  }, [selected]);

  const select = (id: string) => setQuery({ node: id || null });

  const runImpact = async (id: string) => {
    setImpactError('');
    try {
      const r = await api.impact(id);
      setImpact(r);
      // Show what is folded away, if it is in a few hosts.
      if (lay) {
        const hosts = new Set(r.elements.map((e) => lay.folded.get(e)).filter((h): h is string => !!h));
        if (hosts.size && hosts.size <= 5) setExpanded((s) => new Set([...s, ...hosts]));
      }
    } catch (err) {
      setImpactError((err as Error).message);
    }
  };

  const toggle = (hostId: string) =>
    setExpanded((s) => {
      const n = new Set(s);
      if (n.has(hostId)) n.delete(hostId);
      else n.add(hostId);
      return n;
    });

  const focus = (n: TopoNode) => {
    focusNext.current = n.id;
    select(n.id);
    if (lay) {
      const p = lay.byId.get(n.id);
      if (p) {
        focusNext.current = '';
        centreOn(p.x + p.w / 2, p.y, Math.max(view.current.k, 0.9));
      } else {
        const host = lay.folded.get(n.id);
        if (host) setExpanded((s) => new Set(s).add(host));
      }
    }
  };

  // Pointers: one drags the map (or a node), two pinch-zoom.
  const pointers = useRef(new Map<number, { x: number; y: number }>());
  const gesture = useRef<{ mode: 'pan' | 'node' | 'drag' | 'pinch'; id?: string; sx: number; sy: number; d0?: number; k0?: number } | null>(null);

  const local = (e: PointerEvent) => {
    const r = svgRef.current!.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  };

  const onPointerDown = (e: PointerEvent) => {
    if (e.button !== 0 && e.pointerType === 'mouse') return;
    const pt = local(e);
    pointers.current.set(e.pointerId, pt);
    try {
      svgRef.current?.setPointerCapture(e.pointerId);
    } catch {
      /* a synthetic pointer */
    }
    if (pointers.current.size === 2) {
      const [a, b] = [...pointers.current.values()];
      gesture.current = { mode: 'pinch', sx: (a.x + b.x) / 2, sy: (a.y + b.y) / 2, d0: Math.hypot(a.x - b.x, a.y - b.y) || 1, k0: view.current.k };
      drag.current = null;
      return;
    }
    const target = (e.target as Element).closest('[data-id]');
    const id = target?.getAttribute('data-id') || '';
    gesture.current = id ? { mode: 'node', id, sx: pt.x, sy: pt.y } : { mode: 'pan', sx: pt.x, sy: pt.y };
  };

  const onPointerMove = (e: PointerEvent) => {
    const g = gesture.current;
    const prev = pointers.current.get(e.pointerId);
    if (!g || !prev) return;
    busy();
    const pt = local(e);
    pointers.current.set(e.pointerId, pt);
    const v = view.current;
    if (g.mode === 'pinch') {
      const [a, b] = [...pointers.current.values()];
      const d = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      view.current = { ...v, x: v.x + mid.x - g.sx, y: v.y + mid.y - g.sy };
      g.sx = mid.x;
      g.sy = mid.y;
      zoomAt(mid.x, mid.y, g.k0! * (d / g.d0!));
      return;
    }
    if (g.mode === 'node' && Math.hypot(pt.x - g.sx, pt.y - g.sy) > 4) {
      const p = lay?.byId.get(g.id!);
      if (p) {
        g.mode = 'drag';
        drag.current = { id: p.node.id, p, dx: (pt.x - v.x) / v.k - p.x, dy: (pt.y - v.y) / v.k - p.y };
      } else g.mode = 'pan'; // a chip: pan instead
    }
    if (g.mode === 'drag' && drag.current) {
      const d = drag.current;
      // The layout may have been redone meanwhile (a refetch): move the node as it is drawn now.
      d.p = lay?.byId.get(d.id) ?? d.p;
      d.p.x = (pt.x - v.x) / v.k - d.dx;
      d.p.y = (pt.y - v.y) / v.k - d.dy;
      rerender();
      return;
    }
    if (g.mode === 'pan') {
      view.current = { ...v, x: v.x + pt.x - prev.x, y: v.y + pt.y - prev.y };
      applyView();
    }
  };

  const onPointerUp = (e: PointerEvent) => {
    const g = gesture.current;
    pointers.current.delete(e.pointerId);
    if (g?.mode === 'pinch') {
      if (pointers.current.size < 2) gesture.current = null;
      return;
    }
    gesture.current = null;
    if (!g || e.type === 'pointercancel') return;
    if (g.mode === 'node' && g.id) select(g.id === selected ? '' : g.id);
    else if (g.mode === 'drag' && drag.current) {
      const d = drag.current;
      drag.current = null;
      const next = new Map(saved);
      next.set(d.id, [Math.round(d.p.x), Math.round(d.p.y)]);
      savePositions(next);
      setSaved(next);
    } else if (g.mode === 'pan' && Math.hypot(local(e).x - g.sx, local(e).y - g.sy) < 4 && selected) select('');
  };

  const onKeyNode = (e: KeyboardEvent, id: string) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      select(id === selected ? '' : id);
    }
  };

  const resetPositions = () => {
    savePositions(new Map());
    setSaved(new Map());
  };

  if (error && !graph && at == null) return <ErrorBox message={`The topology could not be read: ${error}`} />;

  // What to draw: what is near the viewport.
  const v = view.current;
  const { w, h } = size();
  const padX = w / v.k, padY = h / v.k;
  const box = { x0: -v.x / v.k - padX, y0: -v.y / v.k - padY, x1: (w - v.x) / v.k + padX, y1: (h - v.y) / v.k + padY, k: v.k };
  drawn.current = box;
  const inBox = (x0: number, y0: number, x1: number, y1: number) => x1 >= box.x0 && x0 <= box.x1 && y1 >= box.y0 && y0 <= box.y1;
  const labels = v.k >= LABEL_K;
  const detail = v.k >= DETAIL_K;
  const sel = selected ? byId.get(selected) : undefined;
  const selHost = sel && lay ? (lay.byId.get(sel.id) ? sel.id : lay.folded.get(sel.id)) : undefined;
  const uplinks = lay ? lay.edges.filter((e) => e.edge.kind === 'uplink').length : 0;

  const edges: VNode[] = [];
  const nodes: VNode[] = [];
  const chips: VNode[] = [];
  if (lay) {
    for (const pe of lay.edges) {
      const [a, b] = pe.from.x <= pe.to.x ? [pe.from, pe.to] : [pe.to, pe.from];
      const sx = a.x + a.w, sy = a.y, ex = b.x, ey = b.y;
      if (!inBox(Math.min(sx, ex), Math.min(sy, ey), Math.max(sx, ex), Math.max(sy, ey))) continue;
      const mx = (sx + ex) / 2;
      const cls = loadClass(pe.edge);
      const touches = !!selHost && (pe.from.node.id === selHost || pe.to.node.id === selHost);
      const hit = impacted.size > 0 && impacted.has(pe.from.node.id) && impacted.has(pe.to.node.id);
      const u = pe.edge.utilisation;
      const title = `${pe.from.node.label} → ${pe.to.node.label} (${pe.edge.kind.replace('_', ' ')})${pe.edge.kind === 'uplink' ? `: ${loadText(pe.edge)}` : ''}`;
      edges.push(
        <path
          key={pe.key}
          class={`net-edge ${cls}${touches ? ' sel' : ''}${hit ? ' hit' : ''}`}
          d={`M${sx},${sy}C${mx},${sy} ${mx},${ey} ${ex},${ey}`}
          stroke-width={u != null ? 1.5 + u * 5 : 1.5}
          data-testid="net-edge"
          data-kind={pe.edge.kind}
          data-util={u != null ? u.toFixed(2) : 'unknown'}
        >
          <title>{title}</title>
        </path>,
      );
      if (labels && pe.edge.kind === 'uplink' && (touches || uplinks <= 40)) {
        edges.push(
          <text key={`${pe.key}:l`} class="net-edge-label" x={mx} y={(sy + ey) / 2 - 4} text-anchor="middle" data-testid="net-edge-label">
            {loadText(pe.edge)}
          </text>,
        );
      }
    }
    for (const p of lay.nodes) {
      const n = p.node;
      const top = p.y - p.h / 2;
      const chipRows = p.children?.length ? Math.max(1, Math.floor((p.h + 12) / CHIP_PITCH)) : 0;
      const x0 = p.children?.length && detail ? CHIP_X0 : p.x;
      if (!inBox(x0, top, p.x + p.w, top + p.h)) continue;
      const dim = q !== '' && !matchIds.has(n.id) && !p.children?.some((c) => matchIds.has(c.id));
      const isSel = n.id === selected;
      const imp = impacted.has(n.id) ? 'true' : p.children?.some((c) => impacted.has(c.id)) ? 'contains' : undefined;
      const shown = clip(n.label, 22);
      const sub = clip(sublabel(p, gateways), 26);
      const badge = p.children?.length ? (p.children.length > 999 ? '999+' : String(p.children.length)) : '';
      // The accessible name is the text on screen (WCAG 2.5.3), then the rest.
      const label = `${labels ? `${shown} ${sub}` : n.label}${badge ? ` ${badge}` : ''}: ${KIND_NAME[n.kind].toLowerCase()}, ${n.health}${badge ? `, ${badge} folded` : ''}`;
      nodes.push(
        <g
          key={n.id}
          class={`net-node k-${n.kind} h-${n.health}${isSel ? ' sel' : ''}${dim ? ' dim' : ''}${imp ? ' hit' : ''}${matchIds.has(n.id) ? ' match' : ''}`}
          transform={`translate(${p.x},${top})`}
          data-id={n.id}
          data-testid="net-node"
          data-kind={n.kind}
          data-health={n.health}
          data-impact={imp}
        >
          <rect class="net-box" width={p.w} height={p.h} rx={n.kind === 'host' ? 8 : 6} />
          <circle class="net-dot" cx={14} cy={p.h / 2} r={5} />
          {labels && (
            <>
              <text class="net-label" x={26} y={p.h / 2 - 2} aria-hidden="true">
                {shown}{' '}
              </text>
              <text class="net-sub" x={26} y={p.h / 2 + 11} aria-hidden="true">
                {sub}{' '}
              </text>
            </>
          )}
          {!!p.children?.length && (
            <g class="net-badge" transform={`translate(${p.w - 6},-6)`} aria-hidden="true">
              <rect x={-26} y={-1} width={32} height={16} rx={8} />
              <text x={-10} y={11} text-anchor="middle">
                {badge}
              </text>
            </g>
          )}
          {/* The button is a transparent rectangle on top: no text inside it, so a node the map's
              edge cuts in half still has its whole text as its name (axe label-content-name-mismatch). */}
          <rect
            class="net-hit"
            width={p.w}
            height={p.h}
            rx={n.kind === 'host' ? 8 : 6}
            role="button"
            tabIndex={labels ? 0 : -1}
            aria-label={label}
            aria-pressed={isSel}
            onKeyDown={(e) => onKeyNode(e, n.id)}
          />
        </g>,
      );
      if (detail && chipRows && p.children) {
        const perRow = Math.floor((CHIP_X1 - CHIP_X0) / CHIP_PITCH);
        p.children.forEach((c, i) => {
          const row = i % chipRows;
          const col = Math.floor(i / chipRows);
          if (col >= perRow) return;
          const cx = CHIP_X1 - (col + 1) * CHIP_PITCH;
          const cy = top - 6 + row * CHIP_PITCH;
          chips.push(
            <rect
              key={c.id}
              class={`net-chip h-${c.health}${c.id === selected ? ' sel' : ''}${impacted.has(c.id) ? ' hit' : ''}${q && !matchIds.has(c.id) ? ' dim' : ''}`}
              x={cx}
              y={cy}
              width={CHIP}
              height={CHIP}
              rx={2}
              data-id={c.id}
              data-testid="net-chip"
            >
              <title>{`${c.label} (${c.kind}): ${c.health}, ${c.status}`}</title>
            </rect>,
          );
        });
      }
    }
  }

  const selPlaced = sel && lay ? lay.byId.get(sel.id) : undefined;
  const folded = selPlaced?.children ?? [];
  const uplink = sel && graph ? graph.edges.find((e) => e.kind === 'uplink' && e.to === sel.id) : undefined;

  return (
    <section class="screen screen-fill network" aria-labelledby="net-title">
      <div class="screen-head">
        <h1 id="net-title">Network</h1>
        <span class="muted" data-testid="network-count">
          {graph ? `${graph.nodes.filter((n) => n.kind === 'host').length} hosts · ${graph.nodes.length} elements · ${graph.edges.length} links` : 'Loading the topology…'}
        </span>
      </div>
      <TimeControl at={at} label="the network" />
      {at != null && <PastBanner what="the network" at={at} />}
      {at != null && then.error && <ErrorBox message={`The topology then could not be read: ${then.error}`} />}
      <div class="toolbar" role="search">
        <input
          type="search"
          placeholder="Find a host, container, route…  ( / )"
          aria-label="Find an element on the map"
          value={search}
          onInput={(e) => setSearch(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key !== 'Enter') return;
            // What the stream holds now: the map's copy may be a debounce behind it (a host that just joined).
            const live = fleet.topology.loaded ? find(fleet.topology.graph(), q) : matches;
            if (!live.length) return;
            if (live.some((m) => !byId.has(m.id))) flush();
            const cur = live.findIndex((m) => m.id === selected);
            focus(live[(cur + 1) % live.length]);
          }}
          data-testid="network-search"
        />
        <span class="muted small" aria-live="polite" data-testid="network-matches">
          {q ? `${matches.length} match${matches.length === 1 ? '' : 'es'}${matches.length ? ' · Enter shows the next' : ''}` : ''}
        </span>
        <span class="spacer" />
        <button type="button" class="btn btn-small" onClick={() => zoomAt(size().w / 2, size().h / 2, view.current.k * 1.4)} aria-label="Zoom in" data-testid="net-zoom-in">
          +
        </button>
        <button type="button" class="btn btn-small" onClick={() => zoomAt(size().w / 2, size().h / 2, view.current.k / 1.4)} aria-label="Zoom out" data-testid="net-zoom-out">
          −
        </button>
        <button type="button" class="btn btn-small" onClick={fit} data-testid="net-fit">
          Fit
        </button>
        {saved.size > 0 && (
          <button type="button" class="btn btn-small" onClick={resetPositions} data-testid="net-reset">
            Reset positions
          </button>
        )}
      </div>
      {graph && graph.nodes.every((n) => n.kind === 'internet') ? (
        <Empty title="No hosts yet" testId="network-empty">
          The map shows hosts once an agent reports. Without a gateway (<code>--gateway</code>) the internet is drawn as unknown.
        </Empty>
      ) : (
        <div class="net-body">
          <div class="net-canvas">
            <svg
              ref={svgRef}
              class="net-svg"
              role="group"
              aria-label="Network map: internet on the left, hosts on the right. Drag to pan, wheel or pinch to zoom, drag a node to move it."
              data-testid="network-map"
              data-rendered={nodes.length}
              data-chips={chips.length}
              data-layout-ms={layoutMs.current.toFixed(1)}
              onPointerDown={onPointerDown}
              onPointerMove={onPointerMove}
              onPointerUp={onPointerUp}
              onPointerCancel={onPointerUp}
            >
              <g ref={gRef} transform={`translate(${v.x},${v.y}) scale(${v.k})`}>
                <g class="net-edges">{edges}</g>
                <g class="net-chips">{chips}</g>
                <g class="net-nodes">{nodes}</g>
              </g>
            </svg>
            {!graph && <p class="net-loading muted">Loading the topology…</p>}
            <div class="net-legend" data-testid="network-legend">
              <span><i class="lg h-ok" /> ok</span>
              <span><i class="lg h-warn" /> degraded</span>
              <span><i class="lg h-down" /> down</span>
              <span><i class="lg h-unknown" /> unknown</span>
              <span><i class="lg-line e-low" /> link load &lt; 60 %</span>
              <span><i class="lg-line e-high" /> ≥ 85 %</span>
              <span><i class="lg-line e-unknown" /> speed unknown</span>
              {!detail && <span class="muted">zoom in for containers</span>}
            </div>
          </div>
          {sel && (
            <aside class="net-panel panel" aria-labelledby="net-sel-title" data-testid="network-details" data-id={sel.id}>
              <div class="panel-head">
                <h2 id="net-sel-title">{sel.label}</h2>
                <button type="button" class="btn btn-ghost btn-small net-close" onClick={() => select('')} aria-label="Close the details" data-testid="net-close">
                  ✕
                </button>
              </div>
              <dl class="net-facts">
                <dt>Kind</dt>
                <dd>{KIND_NAME[sel.kind]}</dd>
                <dt>Health</dt>
                <dd>
                  <span class={`net-health h-${sel.health}`}>{sel.health}</span>
                  {sel.status ? ` · ${sel.status}` : ''}
                </dd>
                {sel.kind === 'internet' && gateways === 0 && (
                  <>
                    <dt>Gateway</dt>
                    <dd data-testid="net-no-gateway">no gateway configured (twinbay up --gateway SPEC)</dd>
                  </>
                )}
                {uplink && (
                  <>
                    <dt>Uplink</dt>
                    <dd data-testid="net-uplink">{loadText(uplink)}</dd>
                  </>
                )}
                {folded.length > 0 && (
                  <>
                    <dt>Folded</dt>
                    <dd>{counts(folded)}</dd>
                  </>
                )}
              </dl>
              <div class="net-actions">
                {sel.node_id && (
                  <Link href={hostUrl(sel.node_id, KIND_TAB[sel.kind])} class="btn btn-small" data-testid="net-detail-link">
                    {sel.kind === 'host' ? 'Open the host' : `Open on ${byId.get(`host:${sel.node_id}`)?.label ?? 'its host'}`}
                  </Link>
                )}
                {sel.kind === 'host' && (folded.length > 0 || expanded.has(sel.id)) && (
                  <button type="button" class="btn btn-small" onClick={() => toggle(sel.id)} data-testid="net-expand">
                    {expanded.has(sel.id) ? 'Collapse' : 'Expand'}
                  </button>
                )}
                <button type="button" class="btn btn-small btn-primary" onClick={() => runImpact(sel.id)} data-testid="net-impact">
                  Impact
                </button>
              </div>
              {impactError && <p class="form-error">{impactError}</p>}
              {impact && impact.id === sel.id && (
                <div class="net-impact" data-testid="net-impact-result" data-count={impact.elements.length}>
                  <p>
                    If this goes down, <strong>{impact.elements.length}</strong> element{impact.elements.length === 1 ? '' : 's'} depend{impact.elements.length === 1 ? 's' : ''} on it
                    {impact.routes.length ? `, ${impact.routes.length} route${impact.routes.length === 1 ? '' : 's'} among them` : ''} (highlighted).
                  </p>
                  {impact.names.length ? (
                    <>
                      <p>These public names stop working:</p>
                      <ul data-testid="net-impact-names">
                        {impact.names.map((n) => (
                          <li key={n}>
                            <code>{n}</code>
                          </li>
                        ))}
                      </ul>
                    </>
                  ) : (
                    <p class="muted">No public name depends on it.</p>
                  )}
                </div>
              )}
            </aside>
          )}
        </div>
      )}
    </section>
  );
}
