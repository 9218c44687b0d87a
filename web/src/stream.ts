// The one WebSocket that keeps the UI live. Reconnects by itself with
// jittered backoff and says so; a stream that cannot even open checks the
// session, so an expired one leads back to sign-in instead of retrying forever.
// The hub closes it with 4001 when the session ends elsewhere (signed out
// everywhere, password changed, account removed): back to sign-in, saying
// why; with 4002 when the caller's role or groups changed: reconnect at once.
//
// It asks for the summary view (every host in one line; crates/hub/src/api/
// stream.rs) with large messages compressed: a screen that shows one host's
// whole twin watches it (`watchNode`), a fleet-wide list watches the
// collections it lists (`watchCollection`); watches survive reconnects.

import { api, ApiError } from './api';
import { fleet } from './store';
import type { FleetCollection, StreamMessage } from './types';

let socket: WebSocket | null = null;
let timer: number | undefined;
let attempt = 0;
let stopped = true;
let onSignedOut: (why?: string) => void = () => {};
/** Screens watching the topology (the hub sends it while one does). */
let topologyWatchers = 0;

/** Hosts and collections watched, with how many screens watch each. */
const nodeWatchers = new Map<string, number>();
const collectionWatchers = new Map<FleetCollection, number>();

function send(msg: object) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
}

function sendWatch(on: boolean) {
  send({ type: 'watch', topology: on });
}

/** Counts one more watcher of `key`; calls `start` for the first and `stop` after the last. */
function watch<K>(counts: Map<K, number>, key: K, start: () => void, stop: () => void): () => void {
  const n = counts.get(key) ?? 0;
  counts.set(key, n + 1);
  if (n === 0) start();
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const left = (counts.get(key) ?? 1) - 1;
    if (left > 0) counts.set(key, left);
    else {
      counts.delete(key);
      stop();
    }
  };
}

/** Asks the hub for host `id`'s whole twin and its changes (fleet.detail) until the returned function is called. */
export function watchNode(id: string): () => void {
  return watch(
    nodeWatchers,
    id,
    () => {
      fleet.watch(id);
      send({ type: 'watch', node: id });
    },
    () => {
      send({ type: 'unwatch', node: id });
      fleet.forget(id);
    },
  );
}

/** Asks the hub for a collection of every host (fleet.containers() and so on) until the returned function is called. */
export function watchCollection(c: FleetCollection): () => void {
  return watch(
    collectionWatchers,
    c,
    () => send({ type: 'watch', collection: c }),
    () => {
      send({ type: 'unwatch', collection: c });
      fleet.forgetCollection(c);
    },
  );
}

/**
 * Asks the hub for the topology and its diffs (fleet.topology holds them)
 * until the returned function is called. Watches survive reconnects.
 */
export function watchTopology(): () => void {
  if (topologyWatchers++ === 0) sendWatch(true);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--topologyWatchers === 0) {
      sendWatch(false);
      fleet.topology.clear();
    }
  };
}

/** Close codes of the hub's stream (crates/hub/src/api/stream.rs). */
const CLOSE_ENDED = 4001;
const CLOSE_CHANGED = 4002;

export function startStream(signedOut: (why?: string) => void) {
  onSignedOut = signedOut;
  stopped = false;
  attempt = 0;
  open();
}

export function stopStream() {
  stopped = true;
  clearTimeout(timer);
  const s = socket;
  socket = null;
  if (s) {
    s.onclose = null;
    s.close(1000);
  }
}

function open() {
  if (stopped) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/stream?view=summary&compress=deflate`;
  fleet.setLink(attempt === 0 ? 'connecting' : 'offline', fleet.retryAt);
  fleet.connectAt = performance.now();
  const s = new WebSocket(url);
  s.binaryType = 'arraybuffer';
  socket = s;
  // Compressed frames inflate asynchronously: messages are applied in order
  // through one chain.
  let chain: Promise<void> = Promise.resolve();
  let opened = false;
  s.onopen = () => {
    opened = true;
    fleet.openedAt = performance.now();
    attempt = 0;
    fleet.setLink('live');
    if (topologyWatchers > 0) sendWatch(true);
    for (const id of nodeWatchers.keys()) send({ type: 'watch', node: id });
    for (const c of collectionWatchers.keys()) send({ type: 'watch', collection: c });
  };
  s.onmessage = (e) => {
    const received = performance.now();
    const data = e.data as string | ArrayBuffer;
    const wire = typeof data === 'string' ? data.length : data.byteLength;
    fleet.wireBytes += wire;
    const text = typeof data === 'string' ? Promise.resolve(data) : inflate(data);
    chain = chain.then(async () => {
      let json: string;
      let msg: StreamMessage;
      try {
        json = await text;
        msg = JSON.parse(json);
      } catch {
        return;
      }
      if (socket !== s) return;
      fleet.apply(msg);
      if (msg.type === 'summaries' && msg.snapshot) {
        fleet.lastSnapshot = { received, applied: performance.now(), bytes: json.length, wire, nodes: msg.nodes.length };
      }
    });
  };
  s.onclose = (e) => {
    if (socket !== s || stopped) return;
    socket = null;
    if (e.code === CLOSE_ENDED) {
      onSignedOut(e.reason || 'Your session ended; sign in again.');
    } else if (e.code === CLOSE_CHANGED) {
      attempt = 0;
      open();
    } else if (!opened) {
      // The upgrade failed: maybe the hub is down, maybe the session ended.
      api.whoami().then(
        () => retry(),
        (err) => (err instanceof ApiError && err.status === 401 ? onSignedOut() : retry()),
      );
    } else {
      retry();
    }
  };
}

/** A zlib-compressed frame's text. */
async function inflate(data: ArrayBuffer): Promise<string> {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Response(stream).text();
}

function retry() {
  if (stopped) return;
  attempt++;
  const delay = Math.min(15_000, 500 * 2 ** Math.min(attempt, 5)) * (0.75 + Math.random() * 0.5);
  fleet.setLink('offline', Date.now() + delay);
  timer = window.setTimeout(open, delay);
}

/** Reconnect at once (the banner's "retry now"). */
export function reconnectNow() {
  if (stopped || socket) return;
  clearTimeout(timer);
  open();
}
