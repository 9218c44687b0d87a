// The one WebSocket that keeps the UI live. Reconnects by itself with
// jittered backoff and says so; a stream that cannot even open checks the
// session, so an expired one leads back to sign-in instead of retrying forever.
// The hub closes it with 4001 when the session ends elsewhere (signed out
// everywhere, password changed, account removed): back to sign-in, saying
// why; with 4002 when the caller's role or groups changed: reconnect at once.

import { api, ApiError } from './api';
import { fleet } from './store';
import type { StreamMessage } from './types';

let socket: WebSocket | null = null;
let timer: number | undefined;
let attempt = 0;
let stopped = true;
let onSignedOut: (why?: string) => void = () => {};
/** Screens watching the topology (the hub sends it while one does). */
let topologyWatchers = 0;

function sendWatch(on: boolean) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'watch', topology: on }));
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
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/stream`;
  fleet.setLink(attempt === 0 ? 'connecting' : 'offline', fleet.retryAt);
  fleet.connectAt = performance.now();
  const s = new WebSocket(url);
  socket = s;
  let opened = false;
  s.onopen = () => {
    opened = true;
    fleet.openedAt = performance.now();
    attempt = 0;
    fleet.setLink('live');
    if (topologyWatchers > 0) sendWatch(true);
  };
  s.onmessage = (e) => {
    const received = performance.now();
    let msg: StreamMessage;
    try {
      msg = JSON.parse(e.data as string);
    } catch {
      return;
    }
    fleet.apply(msg);
    if (msg.type === 'snapshot') {
      fleet.lastSnapshot = { received, applied: performance.now(), bytes: (e.data as string).length, nodes: msg.nodes.length };
    }
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
