// The network map's layout: layered left to right by kind (internet,
// gateway, proxy, route, container/unit, port, host), hand-rolled instead
// of dagre or d3: the graph is a DAG whose layers are known from the node
// kinds, so one pass places it in O(nodes + edges) and adds ~1 KB instead of
// ~30 KB gzipped.
//
// Hosts are the spine: sorted by name, one band each, top to bottom, so a
// refetch keeps every unchanged host where it was (a new host only moves the
// ones after it). A collapsed host folds its containers, units and ports
// into itself (a count); an expanded one stacks them in its band. The
// layers left of the hosts sit at the barycentre of what they lead to, then
// are pushed apart so that nothing overlaps.

import type { Topology, TopoEdge, TopoKind, TopoNode } from '../types';

export const NODE_W = 170;
export const NODE_H = 34;
export const HOST_H = 44;
const COL_W = 250;
const BAND = 60;
const CHILD_ROW = 40;
const GAP = 12;

const COLUMN: Record<TopoKind, number> = { internet: 0, gateway: 1, proxy: 2, route: 3, container: 4, unit: 4, port: 5, host: 6 };
/** Where the folded children of a collapsed host are drawn as chips (when zoomed in): columns 4 and 5. */
export const CHIP_X0 = COLUMN.container * COL_W;
export const CHIP_X1 = COLUMN.host * COL_W - 16;
export const CHIP = 9;
export const CHIP_PITCH = 12;

export interface Placed {
  node: TopoNode;
  x: number;
  y: number;
  w: number;
  h: number;
  /** Folded children (collapsed hosts only). */
  children?: TopoNode[];
}

export interface PlacedEdge {
  edge: TopoEdge;
  from: Placed;
  to: Placed;
  key: string;
}

export interface Layout {
  nodes: Placed[];
  byId: Map<string, Placed>;
  edges: PlacedEdge[];
  /** Hidden element id → the host it is folded into. */
  folded: Map<string, string>;
  width: number;
  height: number;
}

const isChild = (k: TopoKind) => k === 'container' || k === 'unit' || k === 'port';

export function layout(g: Topology, expanded: Set<string>, saved: Map<string, [number, number]>): Layout {
  const hosts: TopoNode[] = [];
  const children = new Map<string, TopoNode[]>(); // host id → its containers, units, ports
  const left: TopoNode[] = [];
  for (const n of g.nodes) {
    if (n.kind === 'host') hosts.push(n);
    else if (isChild(n.kind) && n.node_id) {
      const h = `host:${n.node_id}`;
      let l = children.get(h);
      if (!l) children.set(h, (l = []));
      l.push(n);
    } else left.push(n);
  }
  hosts.sort((a, b) => a.label.localeCompare(b.label) || a.id.localeCompare(b.id));

  const byId = new Map<string, Placed>();
  const folded = new Map<string, string>();
  const nodes: Placed[] = [];
  const place = (node: TopoNode, x: number, y: number, h = NODE_H, extra?: Partial<Placed>) => {
    const p: Placed = { node, x, y, w: NODE_W, h, ...extra };
    byId.set(node.id, p);
    nodes.push(p);
    return p;
  };

  // Hosts and (when expanded) their children, band by band.
  let top = 0;
  for (const h of hosts) {
    const kids = (children.get(h.id) || []).sort((a, b) => a.kind.localeCompare(b.kind) || a.label.localeCompare(b.label));
    if (expanded.has(h.id) && kids.length) {
      const mid = kids.filter((k) => k.kind !== 'port');
      const ports = kids.filter((k) => k.kind === 'port');
      const rows = Math.max(mid.length, ports.length, 1);
      const band = Math.max(BAND, rows * CHILD_ROW + GAP);
      const y0 = top + GAP / 2 + CHILD_ROW / 2;
      mid.forEach((k, i) => place(k, COLUMN[k.kind] * COL_W, y0 + i * CHILD_ROW));
      ports.forEach((k, i) => place(k, COLUMN.port * COL_W, y0 + i * CHILD_ROW));
      // The host stays where it was collapsed (its band's top); only the bands below move.
      place(h, COLUMN.host * COL_W, top + BAND / 2, HOST_H);
      top += band;
    } else {
      for (const k of kids) folded.set(k.id, h.id);
      place(h, COLUMN.host * COL_W, top + BAND / 2, HOST_H, { children: kids });
      top += BAND;
    }
  }
  const height = Math.max(top, BAND);

  // The layers left of the hosts, right to left: each at the mean y of
  // what it is linked to on its right (already placed), then spread.
  const rep = (id: string) => folded.get(id) ?? id;
  const links = new Map<string, string[]>();
  const link = (a: string, b: string) => {
    let l = links.get(a);
    if (!l) links.set(a, (l = []));
    l.push(b);
  };
  for (const e of g.edges) {
    link(rep(e.from), rep(e.to));
    link(rep(e.to), rep(e.from));
  }
  for (let col = COLUMN.route; col >= 0; col--) {
    const layer = left.filter((n) => COLUMN[n.kind] === col);
    const want = new Map<string, number>();
    for (const n of layer) {
      const ys = (links.get(n.id) || []).map((o) => byId.get(o)).filter((p): p is Placed => !!p && p.x > col * COL_W).map((p) => p.y);
      want.set(n.id, ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : height / 2);
    }
    layer.sort((a, b) => want.get(a.id)! - want.get(b.id)! || a.label.localeCompare(b.label));
    // Push apart downwards, then shift the whole layer back up if it ran past the bottom.
    const ys = layer.map((n) => want.get(n.id)!);
    for (let i = 1; i < ys.length; i++) ys[i] = Math.max(ys[i], ys[i - 1] + NODE_H + GAP);
    const over = ys.length ? ys[ys.length - 1] - (height - NODE_H / 2) : 0;
    const up = over > 0 ? Math.min(over, Math.max(0, ys[0] - NODE_H / 2)) : 0;
    for (let i = 0; i < ys.length; i++) ys[i] -= up;
    layer.forEach((n, i) => place(n, col * COL_W, ys[i]));
  }

  // A node the user dragged stays where it was put.
  for (const p of nodes) {
    const s = saved.get(p.node.id);
    if (s) [p.x, p.y] = s;
  }

  // Edges between what is drawn (folded children stand for their host), once each.
  const edges: PlacedEdge[] = [];
  const seen = new Set<string>();
  for (const e of g.edges) {
    const a = byId.get(rep(e.from));
    const b = byId.get(rep(e.to));
    if (!a || !b || a === b) continue;
    const key = `${a.node.id}>${b.node.id}>${e.kind}`;
    if (seen.has(key)) continue;
    seen.add(key);
    edges.push({ edge: e, from: a, to: b, key });
  }
  return { nodes, byId, edges, folded, width: COLUMN.host * COL_W + NODE_W, height };
}
