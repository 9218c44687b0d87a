// A synthetic fleet for the UI's load test: N hosts with containers, units,
// ports and sources (some unavailable), in the twin's shapes
// (crates/proto/src/model.rs), and plausible changing samples for each.
// agent-sim.mjs sends them to a hub as agents would.

const REGIONS = ['fra', 'ams', 'par', 'lon', 'nyc', 'sfo', 'sgp', 'syd'];
const ROLES = ['web', 'db', 'cache', 'worker', 'edge', 'build', 'media', 'backup'];
const IMAGES = ['nginx:1.27', 'postgres:16', 'redis:7', 'ghcr.io/acme/api:2.4.1', 'grafana/grafana:11', 'prom/prometheus:v3', 'traefik:v3.2', 'minio/minio:latest'];
const UNITS = ['sshd.service', 'cron.service', 'systemd-journald.service', 'podman.socket', 'backup.timer', 'node-exporter.service', 'chronyd.service', 'nftables.service'];

// A small deterministic PRNG, so screenshots and numbers are comparable between runs.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeFleet(hosts, containersPerHost, seed = 7) {
  const r = rng(seed);
  const now = Date.now();
  const nodes = [];
  for (let i = 0; i < hosts; i++) {
    const hostname = `${ROLES[i % ROLES.length]}-${REGIONS[Math.floor(i / ROLES.length) % REGIONS.length]}-${String(i).padStart(3, '0')}`;
    const id = `n_sim${String(i).padStart(8, '0')}`;
    const containers = {};
    for (let c = 0; c < containersPerHost; c++) {
      const cid = `${id.slice(2)}c${String(c).padStart(4, '0')}`.padEnd(64, '0');
      const dead = r() < 0.02;
      containers[cid] = {
        id: cid, name: `${ROLES[c % ROLES.length]}-${c}`, image: IMAGES[c % IMAGES.length],
        state: dead ? 'exited' : 'running', exit_code: dead ? 137 : null, health: null,
        restart_count: dead ? 3 : 0, ports: c % 4 === 0 ? [`0.0.0.0:${8000 + c}->80/tcp`] : [], labels: {},
        compose_project: c % 3 === 0 ? 'stack' : null, compose_service: c % 3 === 0 ? `svc${c}` : null,
        created: null, started_at: null,
      };
    }
    const units = {};
    for (const [u, name] of UNITS.entries()) {
      const failed = r() < 0.01;
      units[name] = { name, description: `${name} (simulated)`, load_state: 'loaded', active_state: failed ? 'failed' : 'active', sub_state: failed ? 'failed' : 'running', since: Math.floor(now / 1000) - 3600 * (u + 1), user: false, main_pid: 1000 + u, memory_bytes: Math.floor(r() * 200e6), cpu_nsec: null };
    }
    const ports = { 'tcp/0.0.0.0:22': { protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd', pid: 812 } };
    const sources = {};
    for (const s of ['host', 'disks', 'network', 'processes', 'ports', 'containers', 'units']) sources[s] = { name: s, available: true, reason: null };
    if (i % 50 === 7) sources.containers = { name: 'containers', available: false, reason: 'no Docker or Podman socket found' };
    sources.gpu = { name: 'gpu', available: false, reason: 'NVML not found (no NVIDIA driver)' };
    const base = { cpu: 5 + r() * 60, mem: 0.2 + r() * 0.6 };
    nodes.push({
      view: {
        id, hostname, connected: i % 97 !== 3, last_seen: now, agent_version: '0.1.0', seq: 1, simulated: true,
        resources: null,
        host: { hostname, os: 'Debian GNU/Linux 12 (bookworm)', kernel: '6.1.0-28-amd64', arch: 'x86_64', agent_version: '0.1.0', boot_time: Math.floor(now / 1000) - 86400 * 12, cpu_cores: 8, labels: { region: REGIONS[Math.floor(i / ROLES.length) % REGIONS.length] } },
        containers, units, ports, sources, interfaces: { eth0: { name: 'eth0', up: true, speed_mbps: 1000, duplex: 'full', mtu: 1500 } },
        mounts: { '/': { path: '/', device: '/dev/sda1', fs_type: 'ext4', error: null } }, processes: {}, disk_health: {},
      },
      base,
      r: rng(seed * 1000 + i),
    });
  }
  for (const n of nodes) n.view.resources = sample(n, now);
  return nodes;
}

export function sample(n, ts) {
  const r = n.r;
  const cpu = Math.max(0, Math.min(100, n.base.cpu + (r() - 0.5) * 30));
  const total = 16 * 2 ** 30;
  const used = Math.floor(total * Math.max(0.05, Math.min(0.98, n.base.mem + (r() - 0.5) * 0.1)));
  return {
    ts_ms: ts, cpu_pct: cpu, load1: cpu / 12, load5: cpu / 14, load15: cpu / 16,
    mem_total: total, mem_used: used, mem_available: total - used, swap_total: 0, swap_used: 0, uptime_secs: 86400 * 12,
    nets: [{ iface: 'eth0', rx_bps: r() * 5e6, tx_bps: r() * 2e6, rx_errors: 0, tx_errors: 0, rx_drops: 0, tx_drops: 0 }],
    disks: [{ mount: '/', total: 500e9, used: 200e9, read_bps: 0, write_bps: 0 }],
    containers: Object.values(n.view.containers).filter((c) => c.state === 'running').slice(0, 20).map((c) => ({ id: c.id, cpu_pct: r() * 20, mem_bytes: Math.floor(r() * 500e6), mem_limit: 0 })),
  };
}
