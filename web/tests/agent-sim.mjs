// Simulated agents that speak the real agent protocol (crates/proto/src/message.rs)
// to a real hub over its agent WebSocket: challenge → hello with an ed25519
// proof and a one-time join token → welcome → sync_full, then a sample every
// interval and now and then a container that dies or comes back (sync_diff).
// The hosts themselves come from fleet-fixture.mjs. Used by ui.mjs to feed a
// fleet through the hub into the browser, until `twinbay sim` can.
//
// Node 20 needs --experimental-websocket for the global WebSocket.

import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { promisify } from 'node:util';
import { makeFleet, sample } from './fleet-fixture.mjs';

const run = promisify(execFile);
const PROOF_CONTEXT = Buffer.from('twinbay-link-proof-v1\0');
const STATE_KEYS = ['host', 'containers', 'units', 'ports', 'sources', 'interfaces', 'mounts', 'processes', 'disk_health'];

/** One-time join tokens from `twinbay ctl join-token create`, a few at a time. */
async function joinTokens(bin, dataDir, count) {
  const tokens = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const { stdout } = await run(bin, ['ctl', '--data-dir', dataDir, 'join-token', 'create']);
      const json = JSON.parse(Buffer.from(stdout.trim().replace(/^tbj1_/, ''), 'base64url').toString());
      tokens.push(json.token);
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return tokens;
}

function state(view) {
  return Object.fromEntries(STATE_KEYS.map((k) => [k, view[k]]));
}

class Agent {
  constructor(node, url, token, intervalMs) {
    this.node = node;
    this.url = url;
    this.token = token;
    this.intervalMs = intervalMs;
    this.seq = 0;
    this.timer = null;
    this.id = '';
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    // The raw 32-byte key is the tail of its SPKI DER.
    this.publicKey = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  }

  /** Connects, enrolls and syncs; resolves with the node id once welcomed. */
  start() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onerror = () => reject(new Error(`agent ${this.node.view.hostname}: connection failed`));
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        if (msg.type === 'challenge') {
          const signature = sign(null, Buffer.concat([PROOF_CONTEXT, Buffer.from(msg.nonce)]), this.privateKey).toString('base64');
          this.send({ type: 'hello', protocol: msg.protocol, agent_version: '0.1.0-sim', public_key: this.publicKey, signature, join_token: this.token, capabilities: [] });
        } else if (msg.type === 'welcome') {
          this.id = msg.node_id;
          this.seq = 1;
          this.send({ type: 'sync_full', seq: this.seq, state: state(this.node.view) });
          // Like a real agent back from an outage, it sends what it buffered:
          // here the last three minutes, so history and sparklines have a past.
          const now = Date.now();
          this.send({ type: 'metrics', samples: Array.from({ length: 36 }, (_, k) => sample(this.node, now - (35 - k) * 5000)) });
          // Spread the agents' samples over the interval, as real ones are.
          const offset = Math.floor(Math.random() * this.intervalMs);
          this.timer = setTimeout(() => {
            this.tick();
            this.timer = setInterval(() => this.tick(), this.intervalMs);
          }, offset);
          resolve(this.id);
        } else if (msg.type === 'error') {
          if (msg.code === 'resync_required') this.send({ type: 'sync_full', seq: ++this.seq, state: state(this.node.view) });
          else reject(new Error(`agent ${this.node.view.hostname}: ${msg.code}: ${msg.message}`));
        }
      };
    });
  }

  send(msg) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  tick() {
    this.send({ type: 'metrics', samples: [sample(this.node, Date.now())] });
  }

  /** A container dies or comes back: one keyed change. */
  flipContainer(k) {
    const containers = Object.values(this.node.view.containers);
    const c = containers[k % containers.length];
    const dying = c.state === 'running';
    const value = { ...c, state: dying ? 'exited' : 'running', exit_code: dying ? 1 : null };
    this.node.view.containers[c.id] = value;
    this.send({ type: 'sync_diff', seq: ++this.seq, changes: [{ op: 'upsert', collection: 'containers', key: c.id, value }] });
  }

  stop() {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.ws?.close(1000);
  }
}

/**
 * Starts `count` simulated agents against the hub at `hubUrl` (http://127.0.0.1:PORT)
 * whose data dir is `dataDir`. Hosts the fixture marks down connect, sync and leave.
 */
export async function startAgents({ bin, dataDir, hubUrl, count, containersPerHost = 20, intervalMs = 5000 }) {
  const fleet = makeFleet(count, containersPerHost);
  const t0 = performance.now();
  const tokens = await joinTokens(bin, dataDir, count);
  const tokensMs = performance.now() - t0;
  const url = `${hubUrl.replace(/^http/, 'ws')}/api/v1/agent/connect`;
  const agents = fleet.map((node, i) => new Agent(node, url, tokens[i], intervalMs));
  const t1 = performance.now();
  for (let i = 0; i < agents.length; i += 50) await Promise.all(agents.slice(i, i + 50).map((a) => a.start()));
  const connectMs = performance.now() - t1;
  for (const a of agents) if (!a.node.view.connected) a.stop();
  const live = agents.filter((a) => a.node.view.connected);
  let k = 0;
  const churn = setInterval(() => {
    k++;
    live[(k * 37) % live.length].flipContainer(k);
  }, 1000);
  return {
    agents,
    fleet,
    timings: { tokensMs, connectMs },
    stop() {
      clearInterval(churn);
      for (const a of agents) a.stop();
    },
  };
}
