// A host with one container behind a Caddy route, speaking the real agent
// protocol (file-agent.mjs's handshake): its full sync carries `containers`
// and `routes`, and each container change is one sync_diff, as a real
// agent's container source sends it when Podman says a container stopped.
// routes.mjs watches its route's row follow the container; network.mjs stops
// its container to time the map turning the container and its route red.
//
//   const a = await RouteAgent.enroll({ bin, dataDir, hubUrl, hostname: 'routes-host' });
//   a.setContainer('c0ffee', 'exited');   // stopped: its route is broken
//   a.setContainer('c0ffee', 'running');
//   a.stop();

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FileAgent } from './file-agent.mjs';

const run = promisify(execFile);

export const ROUTE_HOST = 'photos.route-test.example';
export const CONTAINER_ID = 'c0ffee';

function container(id, name, state) {
  return { id, name, image: 'ghcr.io/immich-app/immich-server:release', state, exit_code: state === 'running' ? null : 1, restart_count: 0, ports: [], labels: {} };
}

/** As crates/proto's `Route::key`. */
export const routeKey = (r) => `${r.provider}/${r.instance}/${r.host}${r.path}`;

export class RouteAgent extends FileAgent {
  constructor(...args) {
    super(...args);
    this.containers = {};
    this.routes = {};
  }

  static async enroll({ bin, dataDir, hubUrl, hostname }) {
    const { stdout } = await run(bin, ['ctl', '--data-dir', dataDir, 'join-token', 'create']);
    const token = JSON.parse(Buffer.from(stdout.trim().replace(/^tbj1_/, ''), 'base64url').toString()).token;
    const a = new RouteAgent(`${hubUrl.replace(/^http/, 'ws')}/api/v1/agent/connect`, token, hostname);
    a.containers[CONTAINER_ID] = container(CONTAINER_ID, 'photos-immich-1', 'running');
    const r = { provider: 'caddy', instance: 'host', host: ROUTE_HOST, path: '/', upstream: 'photos-immich-1:2283', tls: true, target: { kind: 'container', id: CONTAINER_ID, name: 'photos-immich-1' } };
    a.routes[routeKey(r)] = r;
    await a.start();
    return a;
  }

  sync() {
    const host = { hostname: this.hostname, os: 'Debian GNU/Linux 13 (trixie)', kernel: '6.12.0', arch: 'x86_64', agent_version: '0.1.0-routes', boot_time: Math.floor(Date.now() / 1000) - 86400, cpu_cores: 2, labels: {} };
    const sources = { containers: { name: 'containers', available: true }, routes: { name: 'routes', available: true } };
    this.send({ type: 'sync_full', seq: ++this.seq, state: { host, sources, containers: this.containers, routes: this.routes } });
  }

  /** The container's new state (null: removed), sent as one change. */
  setContainer(id, state) {
    if (state == null) {
      delete this.containers[id];
      this.send({ type: 'sync_diff', seq: ++this.seq, changes: [{ op: 'remove', collection: 'containers', key: id }] });
      return;
    }
    const c = container(id, this.containers[id]?.name ?? 'photos-immich-1', state);
    this.containers[id] = c;
    this.send({ type: 'sync_diff', seq: ++this.seq, changes: [{ op: 'upsert', collection: 'containers', key: id, value: c }] });
  }
}
