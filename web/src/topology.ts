// The live topology, as the stream keeps it: the whole graph once
// (`topology`, when a screen watches it), then only what changed
// (`topology_diff`). Elements are held by id and edges by (from, to, kind),
// so a diff costs what it names, not the size of the fleet.

import type { Topology, TopologyDiffMessage, TopologyMessage, TopoEdge, TopoNode } from './types';

const edgeKey = (e: { from: string; to: string; kind: string }) => `${e.from}\u0000${e.to}\u0000${e.kind}`;

export class LiveTopology {
  /** The hub's version of the graph held; -1 before the first graph. */
  version = -1;
  /** Bumped on every change applied (screens compare it). */
  changes = 0;
  private nodes = new Map<string, TopoNode>();
  private edges = new Map<string, TopoEdge>();
  private cached: Topology | null = null;

  get loaded() {
    return this.version >= 0;
  }

  apply(msg: TopologyMessage | TopologyDiffMessage) {
    if (msg.type === 'topology') {
      this.nodes = new Map(msg.nodes.map((n) => [n.id, n]));
      this.edges = new Map(msg.edges.map((e) => [edgeKey(e), e]));
    } else {
      // A diff older than the graph held is already in it.
      if (msg.version <= this.version) return;
      for (const id of msg.remove_nodes) this.nodes.delete(id);
      for (const n of msg.upsert_nodes) this.nodes.set(n.id, n);
      for (const e of msg.remove_edges) this.edges.delete(edgeKey(e));
      for (const e of msg.upsert_edges) this.edges.set(edgeKey(e), e);
    }
    this.version = msg.version;
    this.changes++;
    this.cached = null;
  }

  clear() {
    this.nodes.clear();
    this.edges.clear();
    this.version = -1;
    this.cached = null;
    this.changes++;
  }

  /** The graph as arrays (a new object after each change, the same one otherwise). */
  graph(): Topology {
    if (!this.cached) this.cached = { nodes: [...this.nodes.values()], edges: [...this.edges.values()] };
    return this.cached;
  }
}
