// A hand-written agent that watches files, speaking the real agent protocol
// (crates/proto/src/message.rs, protocol 2) to a real hub: challenge → hello
// with an ed25519 proof and a one-time join token → welcome → sync_full with
// the `files` collection; then each file's new version is a sync_diff, and
// the hub's `need_files` is answered with `file_chunk` frames (the content,
// in chunks, under its SHA-256), as crates/cli/tests/e2e/files.rs does.
// For the browser tests until the agent's own `--watch` can be driven from them.
//
//   const a = await FileAgent.enroll({ bin, dataDir, hubUrl, hostname: 'files-host' });
//   a.setFile('/srv/app/compose.yaml', 'services: …');   // present, content shipped
//   a.setFile('/srv/app/compose.yaml', null);            // deleted
//   a.setFile('/etc/app/secret.env', 'K=v', { content: 'secret' });  // hashed only
//   a.stop();
//
// Node 20 needs --experimental-websocket for the global WebSocket.

import { execFile } from 'node:child_process';
import { createHash, createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PROOF_CONTEXT = Buffer.from('twinbay-link-proof-v1\0');
/** As the hub's FILE_CHUNK_BYTES is 128 KiB; smaller here so that chunking is exercised. */
const CHUNK = 64;

export const sha256 = (text) => createHash('sha256').update(text).digest('hex');

const KINDS = [
  [/compose\.ya?ml$/, 'compose'],
  [/\.service$|\.socket$|\.timer$/, 'systemd_unit'],
  [/nginx/, 'nginx'],
  [/Caddyfile$/, 'caddy'],
  [/\.env$/, 'env'],
  [/\.ya?ml$/, 'yaml'],
];
const kindOf = (path) => KINDS.find(([re]) => re.test(path))?.[1] ?? 'other';

export class FileAgent {
  /** Enrolls a new host with a fresh join token and syncs it (no files yet unless `files` is given). */
  static async enroll({ bin, dataDir, hubUrl, hostname, files = {} }) {
    const { stdout } = await run(bin, ['ctl', '--data-dir', dataDir, 'join-token', 'create']);
    const token = JSON.parse(Buffer.from(stdout.trim().replace(/^tbj1_/, ''), 'base64url').toString()).token;
    const a = new FileAgent(`${hubUrl.replace(/^http/, 'ws')}/api/v1/agent/connect`, token, hostname);
    for (const [p, text] of Object.entries(files)) a.record(p, text);
    await a.start();
    return a;
  }

  constructor(url, token, hostname) {
    this.url = url;
    this.token = token;
    this.hostname = hostname;
    this.seq = 0;
    this.files = {}; // path -> WatchedFile
    this.contents = new Map(); // sha256 -> text
    this.asked = []; // every { path, sha256 } the hub asked for
    this.key = randomBytes(32); // for keyed hashes of secret files
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    this.publicKey = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  }

  /** The twin's entry for `path` with `text` (null: missing), without sending it. */
  record(path, text, { content = 'shipped', redacted = 0, origin = 'watch', state } = {}) {
    const present = text != null;
    const keyed = present && content === 'secret';
    const hash = !present ? null : keyed ? createHmac('sha256', this.key).update(text).digest('hex') : sha256(text);
    const f = {
      path,
      state: state ?? (present ? 'present' : 'missing'),
      sha256: state === 'unreadable' ? null : hash,
      size: present ? Buffer.byteLength(text) : null,
      mtime_ms: present ? Date.now() : null,
      mode: present ? 0o644 : null,
      uid: present ? 0 : null,
      gid: present ? 0 : null,
      kind: kindOf(path),
      content: present ? content : 'none',
      redacted,
      origin,
      error: state === 'unreadable' ? 'permission denied' : null,
    };
    if (keyed) f.keyed = true;
    if (hash && content === 'shipped') this.contents.set(hash, text);
    this.files[path] = f;
    return f;
  }

  /** A new version of `path` (null: deleted), sent as one change. */
  setFile(path, text, opts) {
    const f = this.record(path, text, opts);
    this.send({ type: 'sync_diff', seq: ++this.seq, changes: [{ op: 'upsert', collection: 'files', key: path, value: f }] });
    return f;
  }

  start() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onerror = () => reject(new Error(`file agent ${this.hostname}: connection failed`));
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        if (msg.type === 'challenge') {
          if (msg.protocol < 2) reject(new Error(`the hub speaks protocol ${msg.protocol}: no watched files`));
          const signature = sign(null, Buffer.concat([PROOF_CONTEXT, Buffer.from(msg.nonce)]), this.privateKey).toString('base64');
          this.send({ type: 'hello', protocol: msg.protocol, agent_version: '0.1.0-files', public_key: this.publicKey, signature, join_token: this.token, capabilities: [] });
        } else if (msg.type === 'welcome') {
          this.id = msg.node_id;
          this.sync();
          this.heartbeat = setInterval(() => this.send({ type: 'heartbeat', ts_ms: Date.now() }), 5000);
          resolve(this.id);
        } else if (msg.type === 'need_files') {
          for (const f of msg.files) this.answer(f);
        } else if (msg.type === 'error') {
          if (msg.code === 'resync_required') this.sync();
          else reject(new Error(`file agent ${this.hostname}: ${msg.code}: ${msg.message}`));
        }
      };
    });
  }

  sync() {
    const host = { hostname: this.hostname, os: 'Debian GNU/Linux 13 (trixie)', kernel: '6.12.0', arch: 'x86_64', agent_version: '0.1.0-files', boot_time: Math.floor(Date.now() / 1000) - 86400, cpu_cores: 2, labels: {} };
    const sources = { files: { name: 'files', available: true } };
    this.send({ type: 'sync_full', seq: ++this.seq, state: { host, sources, files: this.files } });
  }

  /** The content of one version, in chunks, as a real agent sends it. */
  answer({ path, sha256: sha }) {
    this.asked.push({ path, sha256: sha });
    const text = this.contents.get(sha);
    if (text == null) return;
    const bytes = Buffer.from(text);
    for (let off = 0; off < bytes.length || off === 0; off += CHUNK) {
      // Chunks split on UTF-8 boundaries: the test content is ASCII.
      this.send({ type: 'file_chunk', path, sha256: sha, offset: off, total: bytes.length, data: bytes.subarray(off, off + CHUNK).toString() });
      if (bytes.length === 0) break;
    }
  }

  send(msg) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  stop() {
    clearInterval(this.heartbeat);
    this.ws?.close(1000);
  }
}
