// The /world screen (lazy-loaded with three.js: see screens/World.tsx): the
// fleet in its racks as a 3D scene, the same devices as a plain list by rack
// (the keyboard and screen-reader way in), and for admins a panel that adds
// sites, rooms and racks and places hosts (PUT /api/v1/layout).

import { useEffect, useMemo, useReducer, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api';
import { can } from '../access';
import { ErrorBox } from '../components/bits';
import { hostUrl, Link, navigate } from '../router';
import { fleet } from '../store';
import type { Theme } from '../theme';
import { allIds, clone, findRack, hex, looks, makeId, placedIds, placeWorld, type LayoutView, type Site } from './model';
import { WorldScene } from './scene';

interface Gateway {
  provider: string | null;
  device: string | null;
  hint?: string;
}

async function getJson<T>(path: string): Promise<T> {
  const r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, j?.error?.message || `${r.status} ${r.statusText}`);
  return j as T;
}

async function putLayout(version: number, sites: Site[]): Promise<LayoutView> {
  const r = await fetch('/api/v1/layout', {
    method: 'PUT',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ version, sites }),
  });
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, j?.error?.message || `${r.status} ${r.statusText}`);
  return j as LayoutView;
}

/** Re-renders on structural fleet changes only (hosts, their collections, connection), not on samples. */
function useFleetStructure() {
  const [, tick] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    let seen = fleet.structVersion;
    return fleet.subscribe(() => {
      if (fleet.structVersion !== seen) {
        seen = fleet.structVersion;
        tick(0);
      }
    });
  }, []);
  return fleet.structVersion;
}

/** `value`, changing (as `key` says) at most every `ms`; the latest always lands. */
function useThrottled<T>(value: T, key: string, ms: number): T {
  const [held, setHeld] = useState({ value, key });
  const last = useRef(0);
  useEffect(() => {
    if (key === held.key) return;
    const wait = Math.max(0, last.current + ms - performance.now());
    const t = window.setTimeout(() => {
      last.current = performance.now();
      setHeld({ value, key });
    }, wait);
    return () => clearTimeout(t);
  }, [key]);
  return held.value;
}

/**
 * Test hook (web/tests/world.mjs), on window while the screen is open:
 * `__twinbayWorld.stats` (renders, devices, alarms, drawCalls),
 * `colour(id)` (a device's colour as the GPU has it, '#rrggbb'),
 * `project(id)` (its front face in client pixels), `orbit(radians)`.
 */
interface WorldHook {
  stats: WorldScene['stats'];
  colour(id: string): string | null;
  project(id: string): { x: number; y: number } | null;
  orbit(angle: number): void;
}

export function WorldScreen({ theme, role }: { theme: Theme; role: string }) {
  const sv = useFleetStructure();
  const [layout, setLayout] = useState<LayoutView | null>(null);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  const [gateway, setGateway] = useState<Gateway | null>(null);
  const [webgl, setWebgl] = useState<string>('');
  const [hover, setHover] = useState<{ id: string; x: number; y: number } | null>(null);
  const [, setLooksTick] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const scene = useRef<WorldScene | null>(null);
  const admin = can(role, 'layout.edit');

  useEffect(() => {
    let live = true;
    getJson<LayoutView>('/api/v1/layout').then(
      (l) => live && (setLayout(l), setError('')),
      (e) => live && setError((e as Error).message),
    );
    return () => {
      live = false;
    };
  }, [gen]);

  useEffect(() => {
    getJson<Gateway>('/api/v1/gateway').then(setGateway, () => setGateway(null));
  }, []);

  // The scene lives as long as the screen.
  useEffect(() => {
    if (!box.current) return;
    let s: WorldScene;
    try {
      s = new WorldScene(box.current);
    } catch (e) {
      setWebgl(`This browser cannot draw the 3D view (WebGL: ${(e as Error).message}). The list below has every device.`);
      return;
    }
    scene.current = s;
    s.onPick = (id) => navigate(hostUrl(id));
    s.onHover = (id, x, y) => setHover(id ? { id, x, y } : null);
    // The legend's counts and the list's states follow the samples at most once a second.
    let last = 0;
    let timer = 0;
    s.onLooks = () => {
      if (timer) return;
      timer = window.setTimeout(() => {
        timer = 0;
        last = performance.now();
        setLooksTick((n) => n + 1);
      }, Math.max(0, last + 1000 - performance.now()));
    };
    const hook: WorldHook = {
      stats: s.stats,
      colour: (id) => {
        const c = s.colourOf(id);
        return c == null ? null : hex(c);
      },
      project: (id) => s.project(id),
      orbit: (a) => s.orbit(a),
    };
    (window as unknown as { __twinbayWorld?: WorldHook }).__twinbayWorld = hook;
    return () => {
      clearTimeout(timer);
      delete (window as unknown as { __twinbayWorld?: WorldHook }).__twinbayWorld;
      s.dispose();
      scene.current = null;
    };
  }, []);

  useEffect(() => scene.current?.setTheme(theme), [theme]);

  // Hosts without a place: every host the fleet knows that no rack holds (live, as hosts join).
  const placed = useMemo(() => (layout ? placedIds(layout.sites) : new Set<string>()), [layout]);
  const unplacedNow = useMemo(() => fleet.list().filter((n) => !placed.has(n.id)).map((n) => n.id), [placed, sv]);
  // Hosts joining by the hundred (a fleet starting) rebuild the shelf at most once a second.
  // (What a saved layout placed leaves the shelf at once.)
  const shelf = useThrottled(unplacedNow, unplacedNow.join(','), 1000);
  const unplaced = useMemo(() => shelf.filter((id) => !placed.has(id)), [shelf, placed]);
  const world = useMemo(() => (layout ? placeWorld(layout.sites, unplaced) : null), [layout, unplaced.join(',')]);
  useEffect(() => {
    if (world) scene.current?.build(world);
  }, [world]);

  const save = async (sites: Site[]): Promise<string> => {
    if (!layout) return 'the layout is not loaded';
    try {
      const next = await putLayout(layout.version, sites);
      setLayout(next);
      return '';
    } catch (e) {
      const err = e as ApiError;
      return err.status === 409 ? `${err.message}` : err.status === 400 ? `Refused: ${err.message}` : err.message;
    }
  };

  const racks = layout ? layout.sites.flatMap((s) => s.rooms.flatMap((r) => r.racks.map((k) => ({ site: s, room: r, rack: k })))) : [];
  const stats = scene.current?.stats;
  let unknownSpeed = 0;
  let offline = 0;
  // What the list shows of each host; it re-renders only when this changes.
  const sig: string[] = [];
  for (const n of fleet.nodes.values()) {
    const l = looks(n);
    if (l.state === 'offline') offline++;
    else if (l.speedUnknown && placed.has(n.id)) unknownSpeed++;
    sig.push(`${n.id}:${n.hostname}:${l.state}:${l.alarms}`);
  }

  return (
    <section class="screen world" aria-labelledby="world-title">
      <div class="screen-head">
        <h1 id="world-title">World</h1>
        <span class="muted" data-testid="world-summary">
          {layout ? `${racks.length} rack${racks.length === 1 ? '' : 's'} · ${placed.size} placed · ${unplaced.length} unplaced` : 'loading…'}
        </span>
      </div>
      {error && <ErrorBox message={`The layout cannot be read: ${error}`} retry={() => setGen((g) => g + 1)} />}
      {layout && layout.sites.length === 0 && (
        <p class="form-notice" data-testid="world-hint">
          Place hosts in racks: {admin ? 'add a site, a room and a rack below, then place each host at a U position.' : 'an admin adds sites, rooms and racks here and places each host at a U position.'} Until then every host stands on the
          unplaced shelf.
        </p>
      )}
      <div class="world-view">
        <div
          class="world-canvas"
          ref={box}
          role="img"
          aria-label={`3D view of ${racks.length} racks and ${world?.devices.length ?? 0} hosts; the same devices are listed below`}
          data-testid="world-view"
          data-devices={world?.devices.length ?? 0}
        >
          {hover && (
            <div class="world-tip" style={{ left: `${hover.x + 12}px`, top: `${hover.y + 12}px` }} data-testid="world-tip">
              {fleet.nodes.get(hover.id)?.hostname ?? hover.id}
            </div>
          )}
        </div>
        {webgl && <p class="form-error" data-testid="world-webgl">{webgl}</p>}
        <ul class="world-legend muted small" data-testid="world-legend">
          <li>
            <span class="swatch" style={{ background: 'linear-gradient(90deg,#2f7bd8,#2fae8a,#e8c040,#e0402e)' }} /> temperature 30 → 80 °C
          </li>
          <li>
            <span class="swatch" style={{ background: '#d9d4c7' }} /> no temperature reported
          </li>
          <li>
            <span class="swatch" style={{ background: '#555a62' }} /> offline ({offline})
          </li>
          <li>
            <span class="swatch" style={{ background: '#ff2020' }} /> pulsing: failed units or containers ({stats?.alarms ?? 0} hosts)
          </li>
          <li>front bars: CPU (green) and uplink load (blue; grey when the NIC speed is unknown)</li>
          <li data-testid="world-gateway">
            {gateway?.provider
              ? `Gateway: ${gateway.device || gateway.provider} (blue box); each rack's link shows its busiest host's load (thicker, green → red), dashed grey where the load is unknown.`
              : 'No gateway is configured (the blue box stands for the way out; start the hub with --gateway to know it). Each rack\'s link shows its busiest host\'s load, dashed grey where the load is unknown.'}
          </li>
          {unknownSpeed > 0 && <li data-testid="world-unknown-speed">{unknownSpeed === 1 ? '1 placed host has' : `${unknownSpeed} placed hosts have`} a NIC without a known speed: its load is unknown, not 0 % (a rack whose hosts are all unknown has a dashed link).</li>}
        </ul>
      </div>
      {layout && <DeviceList layout={layout} unplaced={unplaced} sig={sig.join('|')} admin={admin} onFocus={(id) => (box.current?.scrollIntoView({ block: 'nearest' }), scene.current?.focus(id))} save={save} />}
      {layout && admin && <AdminPanel layout={layout} unplaced={unplaced} save={save} reload={() => setGen((g) => g + 1)} />}
    </section>
  );
}

function DeviceList({ layout, unplaced, sig, admin, onFocus, save }: { layout: LayoutView; unplaced: string[]; sig: string; admin: boolean; onFocus: (id: string) => void; save: (s: Site[]) => Promise<string> }) {
  const [err, setErr] = useState('');
  // Only when what a row shows changed (`sig`): samples alone do not re-render 500 rows.
  return useMemo(() => {
    const row = (id: string, where: string) => {
      const n = fleet.nodes.get(id);
      const l = looks(n);
      const state = !n ? 'not in the fleet' : l.state === 'offline' ? 'offline' : l.alarms ? `${l.alarms} alarm${l.alarms === 1 ? '' : 's'}` : 'up';
      return (
        <li key={id} data-testid="world-device" data-node-id={id} data-state={l.state} data-alarms={l.alarms}>
          {n ? <Link href={hostUrl(id)}>{n.hostname}</Link> : <span class="mono">{id}</span>}
          <span class="muted">
            {where} · {state}
          </span>
          <button type="button" class="btn btn-small btn-ghost" onClick={() => onFocus(id)} aria-label={`Show ${n?.hostname ?? id} in the 3D view`}>
            show
          </button>
          {admin && where.startsWith('U') && (
            <button
              type="button"
              class="btn btn-small btn-danger-outline"
              data-testid="world-unplace"
              aria-label={`Remove ${n?.hostname ?? id} from its rack`}
              onClick={async () => {
                const sites = clone(layout.sites);
                for (const s of sites) for (const r of s.rooms) for (const k of r.racks) k.devices = k.devices.filter((d) => d.node_id !== id);
                setErr(await save(sites));
              }}
            >
              remove
            </button>
          )}
        </li>
      );
    };
    return (
      <div class="panel world-list" data-testid="world-list">
        <h2>Devices by rack</h2>
        {err && <p class="form-error">{err}</p>}
        {layout.sites.flatMap((s) =>
          s.rooms.flatMap((r) =>
            r.racks.map((k) => (
              <div key={k.id} class="world-rack" data-testid="world-rack" data-rack-id={k.id}>
                <h3>
                  {k.name} <span class="muted small">{s.name} / {r.name} · {k.height_u} U</span>
                </h3>
                {k.devices.length === 0 ? (
                  <p class="muted">Empty.</p>
                ) : (
                  <ul>{[...k.devices].sort((a, b) => b.position_u - a.position_u).map((d) => row(d.node_id, `U${d.position_u}${d.height_u > 1 ? `–${d.position_u + d.height_u - 1}` : ''}${d.face === 'rear' ? ' (rear)' : ''}`))}</ul>
                )}
              </div>
            )),
          ),
        )}
        <div class="world-rack" data-testid="world-rack" data-rack-id="">
          <h3>Unplaced ({unplaced.length})</h3>
          {unplaced.length === 0 ? <p class="muted">Every host has a place.</p> : <ul>{unplaced.map((id) => row(id, 'shelf'))}</ul>}
        </div>
      </div>
    );
  }, [layout, unplaced.join(','), sig, admin, err]);
}

const num = (f: FormData, k: string) => Number(String(f.get(k) ?? '').trim());
const str = (f: FormData, k: string) => String(f.get(k) ?? '').trim();

function AdminPanel({ layout, unplaced, save, reload }: { layout: LayoutView; unplaced: string[]; save: (s: Site[]) => Promise<string>; reload: () => void }) {
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const rooms = layout.sites.flatMap((s) => s.rooms.map((r) => ({ s, r })));
  const racks = rooms.flatMap(({ s, r }) => r.racks.map((k) => ({ s, r, k })));

  const submit = (what: string, edit: (sites: Site[], f: FormData) => string | null) => async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const sites = clone(layout.sites);
    const bad = edit(sites, f);
    if (bad) return setMsg({ ok: false, text: bad });
    setMsg(null);
    setBusy(true);
    const err = await save(sites);
    setBusy(false);
    setMsg(err ? { ok: false, text: err } : { ok: true, text: `${what}: saved.` });
    if (!err) form.reset();
  };

  return (
    <div class="panel world-admin" data-testid="world-admin">
      <h2>Edit the layout</h2>
      <p class="muted small">Admins only. Each change is saved at once (version {layout.version}); an edit made elsewhere in the meantime is refused: reload and do it again.</p>
      {msg && (
        <p class={msg.ok ? 'form-ok' : 'form-error'} role={msg.ok ? 'status' : 'alert'} data-testid="world-admin-msg">
          {msg.text}{' '}
          {!msg.ok && /changed since/.test(msg.text) && (
            <button type="button" class="btn btn-small" onClick={() => (setMsg(null), reload())} data-testid="world-reload">
              Reload the layout
            </button>
          )}
        </p>
      )}
      <form class="form form-row" onSubmit={submit('Site', (sites, f) => (sites.push({ id: makeId(str(f, 'name'), allIds(sites)), name: str(f, 'name'), rooms: [] }), null))} data-testid="add-site">
        <label class="field">
          <span>New site</span>
          <input name="name" required maxLength={100} placeholder="Home" data-testid="site-name" />
        </label>
        <button class="btn" disabled={busy}>
          Add site
        </button>
      </form>
      {layout.sites.length > 0 && (
        <form
          class="form form-row"
          data-testid="add-room"
          onSubmit={submit('Room', (sites, f) => {
            const site = sites.find((s) => s.id === str(f, 'site'));
            if (!site) return 'Pick a site.';
            site.rooms.push({ id: makeId(str(f, 'name'), allIds(sites)), name: str(f, 'name'), width_m: num(f, 'width'), depth_m: num(f, 'depth'), racks: [] });
            return null;
          })}
        >
          <label class="field">
            <span>Site</span>
            <select name="site" data-testid="room-site">
              {layout.sites.map((s) => (
                <option key={s.id} value={s.id}>{s.name}</option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>New room</span>
            <input name="name" required maxLength={100} placeholder="Basement" data-testid="room-name" />
          </label>
          <label class="field">
            <span>Width (m)</span>
            <input name="width" type="number" min="0.5" max="1000" step="0.1" required defaultValue="6" data-testid="room-width" />
          </label>
          <label class="field">
            <span>Depth (m)</span>
            <input name="depth" type="number" min="0.5" max="1000" step="0.1" required defaultValue="4" data-testid="room-depth" />
          </label>
          <button class="btn" disabled={busy}>
            Add room
          </button>
        </form>
      )}
      {rooms.length > 0 && (
        <form
          class="form form-row"
          data-testid="add-rack"
          onSubmit={submit('Rack', (sites, f) => {
            const room = sites.flatMap((s) => s.rooms).find((r) => r.id === str(f, 'room'));
            if (!room) return 'Pick a room.';
            room.racks.push({ id: makeId(str(f, 'name'), allIds(sites)), name: str(f, 'name'), height_u: num(f, 'height'), x_m: num(f, 'x'), y_m: num(f, 'y'), rotation_deg: num(f, 'rot'), devices: [] });
            return null;
          })}
        >
          <label class="field">
            <span>Room</span>
            <select name="room" data-testid="rack-room">
              {rooms.map(({ s, r }) => (
                <option key={r.id} value={r.id}>
                  {s.name} / {r.name}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>New rack</span>
            <input name="name" required maxLength={100} placeholder="Rack A" data-testid="rack-name" />
          </label>
          <label class="field">
            <span>Height (U)</span>
            <input name="height" type="number" min="1" max="100" required defaultValue="42" data-testid="rack-height" />
          </label>
          <label class="field">
            <span>x (m)</span>
            <input name="x" type="number" min="0" step="0.1" required defaultValue="0.5" data-testid="rack-x" />
          </label>
          <label class="field">
            <span>y (m)</span>
            <input name="y" type="number" min="0" step="0.1" required defaultValue="0.5" data-testid="rack-y" />
          </label>
          <label class="field">
            <span>Turned (°)</span>
            <input name="rot" type="number" step="1" required defaultValue="0" data-testid="rack-rot" />
          </label>
          <button class="btn" disabled={busy}>
            Add rack
          </button>
        </form>
      )}
      {racks.length > 0 && (
        <form
          class="form form-row"
          data-testid="place-host"
          onSubmit={submit('Host placed', (sites, f) => {
            const rack = findRack(sites, str(f, 'rack'));
            if (!rack) return 'Pick a rack.';
            if (!str(f, 'host')) return 'Pick a host.';
            rack.devices.push({ node_id: str(f, 'host'), position_u: num(f, 'u'), height_u: num(f, 'h') || 1, face: str(f, 'face') === 'rear' ? 'rear' : 'front' });
            return null;
          })}
        >
          <label class="field">
            <span>Unplaced host</span>
            <select name="host" data-testid="place-node" required>
              {unplaced.map((id) => (
                <option key={id} value={id}>{fleet.nodes.get(id)?.hostname ?? id}</option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>Rack</span>
            <select name="rack" data-testid="place-rack">
              {racks.map(({ s, r, k }) => (
                <option key={k.id} value={k.id}>
                  {k.name} ({s.name} / {r.name})
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>U position</span>
            <input name="u" type="number" min="1" max="100" required defaultValue="1" data-testid="place-u" />
          </label>
          <label class="field">
            <span>Height (U)</span>
            <input name="h" type="number" min="1" max="100" required defaultValue="1" data-testid="place-h" />
          </label>
          <label class="field">
            <span>Face</span>
            <select name="face" data-testid="place-face">
              <option value="front">front</option>
              <option value="rear">rear</option>
            </select>
          </label>
          <button class="btn btn-primary" disabled={busy || unplaced.length === 0} data-testid="place-submit">
            Place host
          </button>
        </form>
      )}
    </div>
  );
}
