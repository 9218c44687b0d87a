// The 3D world's pure part: the layout document (crates/hub/src/layout.rs),
// where each rack and device stands in the scene, and what colour a host's
// live state gives its device. No three.js here (the scene is scene.ts).

import type { HostSummary } from '../types';

export type Face = 'front' | 'rear';
export interface Device {
  node_id: string;
  position_u: number;
  height_u: number;
  face?: Face;
}
export interface Rack {
  id: string;
  name: string;
  height_u: number;
  x_m: number;
  y_m: number;
  rotation_deg: number;
  devices: Device[];
}
export interface Room {
  id: string;
  name: string;
  width_m: number;
  depth_m: number;
  racks: Rack[];
}
export interface Site {
  id: string;
  name: string;
  rooms: Room[];
}
export interface LayoutView {
  version: number;
  sites: Site[];
  unplaced: string[];
}

/** One rack unit (EIA-310), metres. */
export const U = 0.04445;
export const RACK_W = 0.6;
export const RACK_D = 1.0;
/** Rooms of all sites stand in a row along x, this far apart. */
const ROOM_GAP = 2;

export interface PlacedRoom {
  room: Room;
  site: Site;
  /** The room's corner in the scene (x, z). */
  x: number;
  z: number;
}
export interface PlacedRack {
  rack: Rack;
  room: Room;
  site: Site;
  /** Front-left corner in the scene, and the turn about it (radians, about +y). */
  x: number;
  z: number;
  rot: number;
}
export interface PlacedDevice {
  nodeId: string;
  /** The rack holding it; null on the unplaced shelf. */
  rack: PlacedRack | null;
  /** Lowest unit (1-based) and height in U; on the shelf, its slot. */
  u: number;
  h: number;
  face: Face;
  /** Where the slab's centre is (x, y, z) and its turn (radians). */
  pos: [number, number, number];
  rot: number;
}

export interface World {
  rooms: PlacedRoom[];
  racks: PlacedRack[];
  devices: PlacedDevice[];
  /** The scene's extent on the floor: [minX, minZ, maxX, maxZ]. */
  bounds: [number, number, number, number];
  /** Where the gateway box stands. */
  gateway: [number, number, number];
}

/** Shelf slots per column and the column pitch (the "unplaced" shelf). */
const SHELF_ROWS = 20;
const SHELF_PITCH = 0.7;

/**
 * Places rooms, racks and devices in scene coordinates: x across, z deep
 * (the room's y), y up. A rack's footprint is RACK_W × RACK_D from its
 * front-left corner, turned clockwise (seen from above) about that corner.
 * Hosts without a place stand on a shelf in front of the rooms.
 */
export function placeWorld(sites: Site[], unplaced: string[]): World {
  const rooms: PlacedRoom[] = [];
  const racks: PlacedRack[] = [];
  const devices: PlacedDevice[] = [];
  let x = 0;
  let maxDepth = 0;
  for (const site of sites) {
    for (const room of site.rooms) {
      rooms.push({ room, site, x, z: 0 });
      for (const rack of room.racks) {
        const pr: PlacedRack = { rack, room, site, x: x + rack.x_m, z: rack.y_m, rot: (-(rack.rotation_deg || 0) * Math.PI) / 180 };
        racks.push(pr);
        for (const d of rack.devices) {
          const h = Math.max(1, d.height_u || 1);
          // The slab's centre in the rack's own frame, then turned with it.
          const local: [number, number] = [RACK_W / 2, RACK_D / 2];
          const [cx, cz] = turn(local, pr.rot);
          devices.push({ nodeId: d.node_id, rack: pr, u: d.position_u, h, face: d.face ?? 'front', pos: [pr.x + cx, 0.1 + (d.position_u - 1 + h / 2) * U, pr.z + cz], rot: pr.rot });
        }
      }
      x += room.width_m + ROOM_GAP;
      maxDepth = Math.max(maxDepth, room.depth_m);
    }
  }
  // The shelf: columns of SHELF_ROWS slots, in front of the rooms (negative z).
  const shelfZ = -1.6;
  unplaced.forEach((id, i) => {
    const col = Math.floor(i / SHELF_ROWS);
    const row = i % SHELF_ROWS;
    devices.push({ nodeId: id, rack: null, u: row + 1, h: 1, face: 'front', pos: [col * SHELF_PITCH + RACK_W / 2, 0.1 + (row + 0.5) * U * 1.5, shelfZ], rot: 0 });
  });
  const shelfW = Math.ceil(unplaced.length / SHELF_ROWS) * SHELF_PITCH;
  const maxX = Math.max(x - ROOM_GAP, shelfW, 1);
  return {
    rooms,
    racks,
    devices,
    bounds: [-1, shelfZ - 1, maxX + 1, Math.max(maxDepth, 1) + 1],
    gateway: [-1.2, 0.25, shelfZ - 1.2],
  };
}

/** (x, z) turned by `rot` radians about +y (three.js's sense). */
export function turn([x, z]: [number, number], rot: number): [number, number] {
  const c = Math.cos(rot);
  const s = Math.sin(rot);
  return [x * c + z * s, -x * s + z * c];
}

// --- Live state → looks ---------------------------------------------------

export interface Looks {
  /** The slab's colour (0xRRGGBB). */
  colour: number;
  /** What the colour says, in words (for the list and the tooltip). */
  state: 'offline' | 'unknown' | 'temp';
  tempC: number | null;
  cpu: number | null;
  /** Failed units and failing containers. */
  alarms: number;
  /** The busiest real NIC: bits/s, and utilisation 0–1 if its speed is known. */
  bps: number | null;
  utilisation: number | null;
  /** The NIC's speed is not known (no speed, or a driver's "unknown"). */
  speedUnknown: boolean;
}

export const OFFLINE = 0x555a62;
export const NEUTRAL = 0xd9d4c7;
/** Cool blue → green → yellow → hot red, by °C. */
const RAMP: [number, number][] = [
  [30, 0x2f7bd8],
  [50, 0x2fae8a],
  [65, 0xe8c040],
  [80, 0xe0402e],
];

function mix(a: number, b: number, t: number): number {
  const ch = (v: number, s: number) => (v >> s) & 0xff;
  const m = (s: number) => Math.round(ch(a, s) + (ch(b, s) - ch(a, s)) * t) << s;
  return m(16) | m(8) | m(0);
}

export function tempColour(c: number): number {
  if (c <= RAMP[0][0]) return RAMP[0][1];
  for (let i = 1; i < RAMP.length; i++) {
    const [t1, c1] = RAMP[i];
    const [t0, c0] = RAMP[i - 1];
    if (c <= t1) return mix(c0, c1, (c - t0) / (t1 - t0));
  }
  return RAMP[RAMP.length - 1][1];
}

/** Link load colour: green (idle) → yellow → red (full). */
export function loadColour(u: number): number {
  return u < 0.5 ? mix(0x2fae8a, 0xe8c040, u * 2) : mix(0xe8c040, 0xe0402e, (u - 0.5) * 2);
}

/** The hottest sensor (or GPU), °C; null when the host reports none. */
/** The host's uplink as the hub's summary says (topology.rs derives it the
 * same way): its busiest real interface, and its share of the link's speed. */
export function uplink(n: HostSummary): { bps: number | null; utilisation: number | null; speedUnknown: boolean } {
  const bps = n.resources?.uplink_bps;
  if (bps == null) return { bps: null, utilisation: null, speedUnknown: false };
  const util = n.resources?.uplink_util;
  return { bps, utilisation: util ?? null, speedUnknown: util == null };
}

export function looks(n: HostSummary | undefined): Looks {
  if (!n) return { colour: OFFLINE, state: 'unknown', tempC: null, cpu: null, alarms: 0, bps: null, utilisation: null, speedUnknown: false };
  const alarms = n.units_failed + n.containers_failing;
  const link = uplink(n);
  if (!n.connected) return { colour: OFFLINE, state: 'offline', tempC: null, cpu: null, alarms, bps: null, utilisation: null, speedUnknown: link.speedUnknown };
  const tempC = n.resources?.temp_c ?? null;
  return {
    colour: tempC == null ? NEUTRAL : tempColour(tempC),
    state: tempC == null ? 'unknown' : 'temp',
    tempC,
    cpu: n.resources ? n.resources.cpu_pct : null,
    alarms,
    ...link,
  };
}

export const hex = (c: number) => `#${c.toString(16).padStart(6, '0')}`;

// --- Edits (the admin panel) ----------------------------------------------

/** An id the hub accepts (1–64 of a-z A-Z 0-9 - _ .), unique among `taken`. */
export function makeId(name: string, taken: Set<string>): string {
  const base = (name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'x').slice(0, 56);
  let id = base;
  for (let i = 2; taken.has(id); i++) id = `${base}-${i}`;
  return id;
}

export function allIds(sites: Site[]): Set<string> {
  const ids = new Set<string>();
  for (const s of sites) {
    ids.add(s.id);
    for (const r of s.rooms) {
      ids.add(r.id);
      for (const k of r.racks) ids.add(k.id);
    }
  }
  return ids;
}

export function placedIds(sites: Site[]): Set<string> {
  const ids = new Set<string>();
  for (const s of sites) for (const r of s.rooms) for (const k of r.racks) for (const d of k.devices) ids.add(d.node_id);
  return ids;
}

export const clone = (sites: Site[]): Site[] => JSON.parse(JSON.stringify(sites));

export function findRack(sites: Site[], id: string): Rack | undefined {
  for (const s of sites) for (const r of s.rooms) for (const k of r.racks) if (k.id === id) return k;
  return undefined;
}
