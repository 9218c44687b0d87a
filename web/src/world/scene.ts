// The 3D mirror world in three.js: rooms as floors, racks as frames, every
// device as one instance of one InstancedMesh (one draw call for all of
// them), CPU and network bars and alarm halos the same way, uplinks as
// instanced beams (known load) or dashed grey lines (unknown).
//
// Rendering is on demand: a camera move renders at once; live data
// recolours at most every DATA_MS; the only loop is the alarm pulse, and it
// runs at PULSE_FPS, only while some device has an alarm (and not at all
// with prefers-reduced-motion). Idle without alarms: no frames at all.

import {
  AmbientLight,
  BoxGeometry,
  BufferGeometry,
  Color,
  DirectionalLight,
  DynamicDrawUsage,
  Float32BufferAttribute,
  HemisphereLight,
  InstancedMesh,
  LineDashedMaterial,
  LineSegments,
  Matrix4,
  Mesh,
  MeshBasicMaterial,
  MeshLambertMaterial,
  Object3D,
  PerspectiveCamera,
  PlaneGeometry,
  Quaternion,
  Raycaster,
  Scene,
  Vector2,
  Vector3,
  WebGLRenderer,
} from 'three';
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
import { fleet } from '../store';
import { loadColour, looks, RACK_D, RACK_W, U, type Looks, type World } from './model';

const DATA_MS = 250;
const PULSE_FPS = 15;
const SLAB_W = 0.48;
const SLAB_D = 0.9;

export interface Palette {
  background: number;
  floor: number;
  rack: number;
  shelf: number;
}

export const PALETTES: Record<'light' | 'dark', Palette> = {
  light: { background: 0xeef1f5, floor: 0xd5dbe3, rack: 0x39414d, shelf: 0xa08868 },
  dark: { background: 0x0e1116, floor: 0x222a35, rack: 0x8b949e, shelf: 0x6b5a44 },
};

export interface SceneStats {
  renders: number;
  devices: number;
  alarms: number;
  drawCalls: number;
}

/** Whether WebGL is drawn by the CPU (a probe context's renderer name). */
function softwareGl(): boolean {
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    if (!gl) return false;
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return /swiftshader|llvmpipe|softpipe|software/i.test(name);
  } catch {
    return false;
  }
}

const tmp = new Object3D();
const tmpM = new Matrix4();
const tmpC = new Color();

export class WorldScene {
  readonly renderer: WebGLRenderer;
  private scene = new Scene();
  private camera = new PerspectiveCamera(50, 1, 0.05, 500);
  private controls: OrbitControls;
  private world: World | null = null;
  private built: Object3D[] = [];
  private devices: InstancedMesh | null = null;
  private cpuBars: InstancedMesh | null = null;
  private netBars: InstancedMesh | null = null;
  private halos: InstancedMesh | null = null;
  private halo = new MeshLambertMaterial({ color: 0x000000, emissive: 0xff2020, transparent: true, opacity: 0.55, depthWrite: false });
  private beams: InstancedMesh | null = null;
  private dashed: LineSegments | null = null;
  private looks: Looks[] = [];
  private frame = 0;
  private dataTimer = 0;
  private lastData = 0;
  private pulseTimer = 0;
  private alarmCount = 0;
  private reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  private ray = new Raycaster();
  private pointer = new Vector2();
  private palette: Palette = PALETTES.light;
  /** Once someone moves the camera, new builds (hosts joining) keep it where it is. */
  private userMoved = false;
  private unsubscribe: () => void;
  private resize: ResizeObserver;
  stats: SceneStats = { renders: 0, devices: 0, alarms: 0, drawCalls: 0 };
  /** Drawn by a software renderer (no antialiasing, one pixel per CSS pixel). */
  readonly soft: boolean;
  /** Told when the hovered device changes (node id, or null), with where the pointer is. */
  onHover: (id: string | null, x: number, y: number) => void = () => {};
  onPick: (id: string) => void = () => {};
  /** Told after live data changed the looks (a summary for the legend). */
  onLooks: () => void = () => {};

  constructor(private host: HTMLElement) {
    // A software renderer (SwiftShader, llvmpipe) pays dearly for multisampling
    // and extra pixels: without them it draws 500 devices several times faster.
    const soft = softwareGl();
    this.renderer = new WebGLRenderer({ antialias: !soft, powerPreference: 'low-power' });
    this.renderer.setPixelRatio(soft ? 1 : Math.min(window.devicePixelRatio || 1, 2));
    this.soft = soft;
    host.appendChild(this.renderer.domElement);
    const canvas = this.renderer.domElement;
    canvas.setAttribute('data-testid', 'world-canvas');
    this.scene.add(new HemisphereLight(0xffffff, 0x444450, 1.6));
    this.scene.add(new AmbientLight(0xffffff, 0.5));
    const sun = new DirectionalLight(0xffffff, 1.6);
    sun.position.set(5, 10, 7);
    this.scene.add(sun);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.maxPolarAngle = Math.PI * 0.49;
    this.controls.addEventListener('change', () => this.moving());
    this.controls.addEventListener('start', () => (this.userMoved = true));
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(host);
    this.fit();
    canvas.addEventListener('pointermove', this.move);
    canvas.addEventListener('pointerleave', () => this.onHover(null, 0, 0));
    canvas.addEventListener('pointerdown', this.down);
    canvas.addEventListener('pointerup', this.up);
    this.unsubscribe = fleet.subscribe(() => this.dataChanged());
  }

  setTheme(theme: 'light' | 'dark') {
    this.palette = PALETTES[theme];
    this.scene.background = new Color(this.palette.background);
    if (this.world) this.build(this.world);
  }

  /** (Re)builds everything from a placed layout; frames it all until someone moved the camera. */
  build(world: World) {
    this.world = world;
    for (const o of this.built) {
      this.scene.remove(o);
      o.traverse((c) => {
        const m = c as Mesh;
        m.geometry?.dispose();
        const mat = m.material;
        if (mat && mat !== this.halo) (Array.isArray(mat) ? mat : [mat]).forEach((x) => x.dispose());
      });
    }
    this.built = [];
    const add = (o: Object3D) => {
      this.scene.add(o);
      this.built.push(o);
      return o;
    };
    const p = this.palette;

    // Floors.
    const floorMat = new MeshLambertMaterial({ color: p.floor });
    for (const r of world.rooms) {
      const f = new Mesh(new PlaneGeometry(r.room.width_m, r.room.depth_m), floorMat);
      f.rotation.x = -Math.PI / 2;
      f.position.set(r.x + r.room.width_m / 2, 0, r.z + r.room.depth_m / 2);
      add(f);
    }

    // Racks: four posts and two plates each, two instanced meshes in all.
    const rackMat = new MeshLambertMaterial({ color: p.rack });
    const posts = new InstancedMesh(new BoxGeometry(1, 1, 1), rackMat, Math.max(1, world.racks.length * 4));
    const plates = new InstancedMesh(new BoxGeometry(1, 1, 1), rackMat, Math.max(1, world.racks.length * 2));
    posts.count = world.racks.length * 4;
    plates.count = world.racks.length * 2;
    world.racks.forEach((r, i) => {
      const h = r.rack.height_u * U + 0.2;
      const q = new Quaternion().setFromAxisAngle(new Vector3(0, 1, 0), r.rot);
      const at = (lx: number, ly: number, lz: number) => new Vector3(lx, ly, lz).applyQuaternion(q).add(new Vector3(r.x, 0, r.z));
      [
        [0.02, 0.02],
        [RACK_W - 0.02, 0.02],
        [0.02, RACK_D - 0.02],
        [RACK_W - 0.02, RACK_D - 0.02],
      ].forEach(([lx, lz], k) => {
        tmpM.compose(at(lx, h / 2, lz), q, new Vector3(0.04, h, 0.04));
        posts.setMatrixAt(i * 4 + k, tmpM);
      });
      [0.05, h].forEach((y, k) => {
        tmpM.compose(at(RACK_W / 2, y, RACK_D / 2), q, new Vector3(RACK_W, 0.04, RACK_D));
        plates.setMatrixAt(i * 2 + k, tmpM);
      });
    });
    add(posts);
    add(plates);

    // The unplaced shelf: a plank under each column of hosts.
    const shelf = world.devices.filter((d) => !d.rack);
    if (shelf.length) {
      const cols = Math.ceil(shelf.length / 20);
      const plank = new Mesh(new BoxGeometry(cols * 0.7, 0.05, 1), new MeshLambertMaterial({ color: p.shelf }));
      plank.position.set((cols * 0.7) / 2 - 0.05, 0.06, shelf[0].pos[2]);
      add(plank);
    }

    // Devices: one instanced mesh; the bars and halos the same.
    const n = world.devices.length;
    const cap = Math.max(1, n);
    this.devices = new InstancedMesh(new BoxGeometry(1, 1, 1), new MeshLambertMaterial({ color: 0xffffff }), cap);
    this.devices.count = n;
    this.cpuBars = new InstancedMesh(new BoxGeometry(1, 1, 1), new MeshBasicMaterial({ color: 0xffffff }), cap);
    this.netBars = new InstancedMesh(new BoxGeometry(1, 1, 1), new MeshBasicMaterial({ color: 0xffffff }), cap);
    this.halos = new InstancedMesh(new BoxGeometry(1, 1, 1), this.halo, cap);
    for (const m of [this.devices, this.cpuBars, this.netBars, this.halos]) {
      m.instanceMatrix.setUsage(DynamicDrawUsage);
      m.frustumCulled = false;
    }
    world.devices.forEach((d, i) => {
      tmp.position.set(...d.pos);
      tmp.rotation.set(0, d.rot, 0);
      tmp.scale.set(SLAB_W, Math.max(U * 0.8, d.h * U - 0.004), SLAB_D);
      tmp.updateMatrix();
      this.devices!.setMatrixAt(i, tmp.matrix);
      this.devices!.setColorAt(i, tmpC.set(0xffffff));
    });
    add(this.devices);
    add(this.cpuBars);
    add(this.netBars);
    add(this.halos);

    // Uplinks: from the gateway to every device (beams where the load is known).
    this.beams = new InstancedMesh(new BoxGeometry(1, 1, 1), new MeshBasicMaterial({ color: 0xffffff }), cap);
    this.beams.frustumCulled = false;
    add(this.beams);
    const gw = new Mesh(new BoxGeometry(0.5, 0.12, 0.35), new MeshLambertMaterial({ color: 0x3a6ea5 }));
    gw.position.set(...world.gateway);
    add(gw);

    this.stats.devices = n;
    if (!this.userMoved) this.frameAll();
    this.applyLooks();
  }

  /** Points the camera at the whole scene. */
  frameAll() {
    if (!this.world) return;
    const [x0, z0, x1, z1] = this.world.bounds;
    const cx = (x0 + x1) / 2;
    const cz = (z0 + z1) / 2;
    const span = Math.max(x1 - x0, z1 - z0, 3);
    this.controls.target.set(cx, 0.8, cz);
    this.camera.position.set(cx + span * 0.25, span * 0.45 + 1.2, z1 + span * 0.4);
    this.controls.update();
    this.requestRender();
  }

  private dataChanged() {
    // Coalesced: at most one recolour per DATA_MS, however often samples come.
    if (this.dataTimer) return;
    const wait = Math.max(0, this.lastData + DATA_MS - performance.now());
    this.dataTimer = window.setTimeout(() => {
      this.dataTimer = 0;
      this.lastData = performance.now();
      this.applyLooks();
    }, wait);
  }

  /** Reads every placed host's state from the fleet and updates colours, bars, halos and links. */
  applyLooks() {
    const w = this.world;
    if (!w || !this.devices || !this.cpuBars || !this.netBars || !this.halos || !this.beams) return;
    let alarms = 0;
    let beams = 0;
    let cpuN = 0;
    let netN = 0;
    const dash: number[] = [];
    const [gx, gy, gz] = w.gateway;
    const perRack = new Map<World['racks'][number], { util: number | null; any: boolean }>();
    this.looks = w.devices.map((d, i) => {
      const l = looks(fleet.nodes.get(d.nodeId));
      this.devices!.setColorAt(i, tmpC.set(l.colour));
      // The front face (or rear), in the rack's frame: +z is the front.
      const front = (d.face === 'rear' ? -1 : 1) * (SLAB_D / 2 + 0.004);
      const put = (mesh: InstancedMesh, k: number, lx: number, len: number, colour: number) => {
        tmp.position.set(d.pos[0], d.pos[1], d.pos[2]);
        tmp.rotation.set(0, d.rot, 0);
        tmp.updateMatrix();
        const off = new Vector3(lx + len / 2, 0, front).applyAxisAngle(new Vector3(0, 1, 0), d.rot);
        tmp.position.add(off);
        tmp.scale.set(Math.max(0.002, len), U * 0.3, 0.006);
        tmp.updateMatrix();
        mesh.setMatrixAt(k, tmp.matrix);
        mesh.setColorAt(k, tmpC.set(colour));
      };
      if (l.cpu != null) put(this.cpuBars!, cpuN++, -SLAB_W / 2 + 0.02, (0.2 * Math.min(100, l.cpu)) / 100, l.cpu > 85 ? 0xff5a3c : 0x7cf0a0);
      if (l.bps != null) {
        // Known speed: its share; unknown: a log scale of the rate (1 kbit/s … 10 Gbit/s).
        const share = l.utilisation ?? Math.min(1, Math.max(0, (Math.log10(Math.max(1, l.bps)) - 3) / 7));
        put(this.netBars!, netN++, 0.02, 0.2 * share, l.utilisation == null ? 0x9aa3ad : 0x5ab8ff);
      }
      if (l.alarms > 0) {
        tmp.position.set(...d.pos);
        tmp.rotation.set(0, d.rot, 0);
        tmp.scale.set(SLAB_W + 0.03, d.h * U + 0.012, SLAB_D + 0.03);
        tmp.updateMatrix();
        this.halos!.setMatrixAt(alarms++, tmp.matrix);
      }
      // Each rack's uplink carries its busiest host's load (known ones only).
      if (l.state !== 'offline' && d.rack) {
        const k = perRack.get(d.rack) ?? { util: null as number | null, any: false };
        k.any = true;
        if (l.utilisation != null) k.util = Math.max(k.util ?? 0, l.utilisation);
        perRack.set(d.rack, k);
      }
      return l;
    });
    const from = new Vector3(gx, gy, gz);
    for (const [r, k] of perRack) {
      const to = new Vector3(RACK_W / 2, r.rack.height_u * U + 0.22, RACK_D / 2).applyAxisAngle(new Vector3(0, 1, 0), r.rot).add(new Vector3(r.x, 0, r.z));
      if (k.util == null) {
        dash.push(gx, gy, gz, to.x, to.y, to.z);
        continue;
      }
      const len = from.distanceTo(to);
      tmp.position.copy(from).add(to).multiplyScalar(0.5);
      tmp.quaternion.setFromUnitVectors(new Vector3(0, 0, 1), to.clone().sub(from).normalize());
      const t = 0.01 + 0.05 * k.util;
      tmp.scale.set(t, t, len);
      tmp.updateMatrix();
      this.beams.setMatrixAt(beams, tmp.matrix);
      this.beams.setColorAt(beams++, tmpC.set(loadColour(k.util)));
    }
    // (No colour buffer until a first instance has a colour: an empty world.)
    if (this.devices.instanceColor) this.devices.instanceColor.needsUpdate = true;
    for (const [m, c] of [
      [this.cpuBars, cpuN],
      [this.netBars, netN],
      [this.halos, alarms],
      [this.beams, beams],
    ] as [InstancedMesh, number][]) {
      m.count = c;
      m.instanceMatrix.needsUpdate = true;
      if (m.instanceColor) m.instanceColor.needsUpdate = true;
    }
    // Unknown load: dashed grey, never a made-up 0 %.
    if (this.dashed) {
      this.scene.remove(this.dashed);
      this.dashed.geometry.dispose();
      (this.dashed.material as LineDashedMaterial).dispose();
    }
    if (dash.length) {
      const g = new BufferGeometry();
      g.setAttribute('position', new Float32BufferAttribute(dash, 3));
      this.dashed = new LineSegments(g, new LineDashedMaterial({ color: 0x8a94a6, dashSize: 0.12, gapSize: 0.08 }));
      this.dashed.computeLineDistances();
      this.scene.add(this.dashed);
    } else this.dashed = null;
    this.alarmCount = alarms;
    this.stats.alarms = alarms;
    this.requestRender();
    this.pulse();
    this.onLooks();
  }

  looksAt(i: number): Looks | undefined {
    return this.looks[i];
  }

  /** The alarm pulse: a slow loop, only while there are alarms. */
  private pulse() {
    if (this.pulseTimer || this.alarmCount === 0 || this.reducedMotion) return;
    this.pulseTimer = window.setTimeout(() => {
      this.pulseTimer = 0;
      const t = performance.now() / 1000;
      this.halo.emissiveIntensity = 0.6 + 0.6 * Math.sin(t * Math.PI * 2 * 0.8);
      this.halo.opacity = 0.3 + 0.3 * (0.5 + 0.5 * Math.sin(t * Math.PI * 2 * 0.8));
      this.requestRender();
      this.pulse();
    }, 1000 / PULSE_FPS);
  }

  /**
   * The camera moves: render now. A software renderer draws at half
   * resolution while it moves and sharp again once it rests (250 ms).
   */
  private restTimer = 0;
  private moving() {
    if (this.soft) {
      if (this.renderer.getPixelRatio() !== 0.5) this.renderer.setPixelRatio(0.5);
      clearTimeout(this.restTimer);
      this.restTimer = window.setTimeout(() => {
        this.renderer.setPixelRatio(1);
        this.requestRender();
      }, 250);
    }
    this.requestRender();
  }

  requestRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.renderer.render(this.scene, this.camera);
      this.stats.renders++;
      this.stats.drawCalls = this.renderer.info.render.calls;
    });
  }

  private fit() {
    const w = Math.max(1, this.host.clientWidth);
    const h = Math.max(1, this.host.clientHeight);
    this.renderer.setSize(w, h);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.requestRender();
  }

  /** The device under a client point, by index. */
  private pick(clientX: number, clientY: number): number | null {
    if (!this.devices || !this.world) return null;
    const r = this.renderer.domElement.getBoundingClientRect();
    this.pointer.set(((clientX - r.left) / r.width) * 2 - 1, -((clientY - r.top) / r.height) * 2 + 1);
    this.ray.setFromCamera(this.pointer, this.camera);
    const hit = this.ray.intersectObject(this.devices, false)[0];
    return hit?.instanceId ?? null;
  }

  private hoverFrame = 0;
  private move = (e: PointerEvent) => {
    if (e.pointerType === 'touch' || this.hoverFrame) return;
    const { clientX, clientY } = e;
    this.hoverFrame = requestAnimationFrame(() => {
      this.hoverFrame = 0;
      const i = this.pick(clientX, clientY);
      const r = this.renderer.domElement.getBoundingClientRect();
      this.renderer.domElement.style.cursor = i == null ? '' : 'pointer';
      this.onHover(i == null ? null : this.world!.devices[i].nodeId, clientX - r.left, clientY - r.top);
    });
  };

  // A click (not a drag) on a device opens its host.
  private downAt: [number, number] | null = null;
  private down = (e: PointerEvent) => {
    this.downAt = [e.clientX, e.clientY];
  };
  private up = (e: PointerEvent) => {
    if (!this.downAt || Math.hypot(e.clientX - this.downAt[0], e.clientY - this.downAt[1]) > 5) return;
    this.downAt = null;
    const i = this.pick(e.clientX, e.clientY);
    if (i != null) this.onPick(this.world!.devices[i].nodeId);
  };

  /** Where device `id`'s front face is on screen (client pixels), or null (for tests and focus). */
  project(id: string): { x: number; y: number } | null {
    const i = this.world?.devices.findIndex((d) => d.nodeId === id) ?? -1;
    if (i < 0 || !this.world) return null;
    const d = this.world.devices[i];
    const v = new Vector3(...d.pos);
    v.add(new Vector3(0, 0, SLAB_D / 2).applyAxisAngle(new Vector3(0, 1, 0), d.rot));
    v.project(this.camera);
    const r = this.renderer.domElement.getBoundingClientRect();
    return { x: r.left + ((v.x + 1) / 2) * r.width, y: r.top + ((1 - v.y) / 2) * r.height };
  }

  /** Device `id`'s colour as the GPU gets it (0xRRGGBB), or null. */
  colourOf(id: string): number | null {
    const i = this.world?.devices.findIndex((d) => d.nodeId === id) ?? -1;
    if (i < 0 || !this.devices) return null;
    this.devices.getColorAt(i, tmpC);
    return tmpC.getHex();
  }

  /** Turns the camera about its target (radians), as a drag would. */
  orbit(angle: number) {
    this.userMoved = true;
    const off = this.camera.position.clone().sub(this.controls.target);
    off.applyAxisAngle(new Vector3(0, 1, 0), angle);
    this.camera.position.copy(this.controls.target).add(off);
    this.camera.lookAt(this.controls.target);
    this.controls.update();
  }

  /** Looks at one device (from the list's "show" button). */
  focus(id: string) {
    this.userMoved = true;
    const i = this.world?.devices.findIndex((d) => d.nodeId === id) ?? -1;
    if (i < 0 || !this.world) return;
    const d = this.world.devices[i];
    const front = new Vector3(0, 0, 2.2).applyAxisAngle(new Vector3(0, 1, 0), d.rot);
    this.controls.target.set(...d.pos);
    this.camera.position.set(d.pos[0] + front.x + 0.6, d.pos[1] + 0.8, d.pos[2] + front.z);
    this.controls.update();
  }

  dispose() {
    this.unsubscribe();
    clearTimeout(this.dataTimer);
    clearTimeout(this.pulseTimer);
    clearTimeout(this.restTimer);
    cancelAnimationFrame(this.frame);
    cancelAnimationFrame(this.hoverFrame);
    this.resize.disconnect();
    this.controls.dispose();
    this.world = null;
    for (const o of this.built) this.scene.remove(o);
    this.renderer.dispose();
    this.renderer.domElement.remove();
  }
}
