// twinbay web UI — a dependency-free single-page dashboard.
//
// Signs in against /api/v1/session (HttpOnly cookie), then mirrors the hub's
// node twins over one WebSocket (/api/v1/stream) and renders either the fleet
// table (#/) or one host's detail page (#/nodes/<id>). Incoming messages only
// mark nodes dirty; rendering is batched per animation frame and touches only
// what changed. Data reaches the DOM exclusively via textContent/attributes.

const HISTORY = 120; // sparkline points kept per node
const F_META = 1, F_RES = 2, F_COLL = 4, F_ALL = 7; // what changed on a node
const COLLECTIONS = ['containers', 'units', 'ports', 'sources'];

const state = {
  user: null,
  nodes: new Map(),   // id -> NodeView (collections held as Maps)
  history: new Map(), // id -> [{t, v}] CPU points since the page opened
  synced: false,      // a snapshot has arrived
  dirty: new Map(),   // id -> F_* flags awaiting render
  reorder: false,     // fleet membership or hostnames changed
  frame: 0,
};
const live = { ws: null, wanted: false, attempt: 0, timer: 0 };
let view = null;

const $ = (sel) => document.querySelector(sel);

// ---------- DOM helpers & formatting ----------

function el(tag, props = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) if (kid != null) e.append(kid);
  return e;
}

function setText(e, value) {
  const s = String(value);
  if (e.textContent !== s) e.textContent = s; // avoid needless DOM mutations
}

const num = (v) => typeof v === 'number' && Number.isFinite(v);
const pct = (v) => (num(v) ? `${v.toFixed(1)}%` : '—');
const clamp = (v) => Math.max(0, Math.min(100, num(v) ? v : 0));

function fmtBytes(n) {
  if (!num(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function fmtDuration(secs) {
  if (!num(secs)) return '—';
  const s = Math.max(0, Math.floor(secs));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return m ? `${m}m` : `${s}s`;
}

function fmtAgo(ms) {
  if (!num(ms) || ms <= 0) return 'never';
  const secs = (Date.now() - ms) / 1000;
  return secs < 5 ? 'just now' : `${fmtDuration(secs)} ago`;
}

const fmtDate = (ms) => (num(ms) && ms > 0 ? new Date(ms).toLocaleString() : '—');
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

function bar() {
  return el('span', { class: 'bar', 'aria-hidden': 'true', 'data-level': 'none' }, el('span', { class: 'bar-fill' }));
}

function setBar(b, value) {
  const v = value == null ? null : clamp(value);
  if (b._v === v) return;
  b._v = v;
  b.style.setProperty('--pct', String(v ?? 0));
  b.dataset.level = v == null ? 'none' : v >= 90 ? 'crit' : v >= 75 ? 'warn' : 'ok';
}

function badge(text, tone) {
  return text ? el('span', { class: 'badge', 'data-tone': tone || 'muted', text }) : '—';
}

// ---------- API & session ----------

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data = null;
  try { data = await res.json(); } catch { /* empty or non-JSON body */ }
  return { status: res.status, ok: res.ok, data };
}

function showScreen(name) {
  for (const id of ['boot', 'signin', 'shell']) $(`#${id}`).hidden = id !== name;
}

function showSignIn(message) {
  disconnect();
  Object.assign(state, { user: null, synced: false });
  state.nodes.clear();
  state.history.clear();
  if (view) view.destroy();
  view = null;
  $('#view').replaceChildren();
  showScreen('signin');
  showError(message);
  $('#signin-password').value = '';
  $('#signin-username').focus();
  document.title = 'Sign in · twinbay';
}

function showError(message) {
  $('#signin-error').hidden = !message;
  setText($('#signin-error'), message || '');
}

function signedIn(user) {
  state.user = user;
  showScreen('shell');
  setText($('#user'), user.role ? `${user.username} · ${user.role}` : user.username);
  connect();
  route();
}

async function onSignIn(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const username = form.username.value.trim(), password = form.password.value;
  if (!username || !password) return showError('Enter a username and password.');
  const button = $('#signin-submit');
  button.disabled = true;
  try {
    const r = await api('POST', '/api/v1/session', { username, password });
    if (r.ok && r.data) return signedIn(r.data);
    showError(r.data?.error?.message || `Sign-in failed (HTTP ${r.status}).`);
    form.password.value = '';
    form.password.focus();
  } catch {
    showError('Cannot reach the twinbay hub. Check your connection and try again.');
  } finally {
    button.disabled = false;
  }
}

async function onSignOut() {
  try { await api('DELETE', '/api/v1/session'); } catch { /* signed out locally anyway */ }
  showSignIn();
}

// ---------- live stream ----------

function connect() {
  live.wanted = true;
  clearTimeout(live.timer);
  if (live.ws) { const old = live.ws; live.ws = null; old.close(); }
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/stream`);
  live.ws = ws;
  ws.onopen = () => { live.attempt = 0; $('#offline').hidden = true; };
  ws.onmessage = (ev) => {
    try { handle(JSON.parse(ev.data)); } catch (err) { console.warn('twinbay: bad stream message', err); }
  };
  ws.onclose = () => {
    if (live.ws !== ws) return; // superseded or deliberately closed
    live.ws = null;
    $('#offline').hidden = false;
    if (live.wanted) scheduleReconnect();
  };
}

function disconnect() {
  live.wanted = false;
  clearTimeout(live.timer);
  const ws = live.ws;
  live.ws = null;
  if (ws) ws.close();
  $('#offline').hidden = true;
}

function scheduleReconnect() {
  const base = Math.min(15000, 1000 * 2 ** Math.min(live.attempt++, 4));
  live.timer = setTimeout(reconnect, base + Math.random() * base * 0.3);
}

async function reconnect() {
  if (!live.wanted) return;
  let r;
  try { r = await api('GET', '/api/v1/session'); } catch { r = null; }
  if (!live.wanted) return;
  if (r && r.status === 401) return showSignIn('Your session has ended. Please sign in again.');
  if (r && r.ok) connect();
  else scheduleReconnect();
}

// ---------- twin state ----------

function normalize(n) {
  n.host = n.host || {};
  n.hostname = n.hostname || n.host.hostname || n.id;
  for (const c of COLLECTIONS) n[c] = new Map(Object.entries(n[c] || {}));
  return n;
}

function addNode(raw) {
  if (!raw || typeof raw.id !== 'string') return;
  const prev = state.nodes.get(raw.id);
  const n = normalize(raw);
  state.nodes.set(n.id, n);
  if (!prev || prev.hostname !== n.hostname) state.reorder = true;
  pushHistory(n.id, n.resources);
  mark(n.id, F_ALL);
}

function pushHistory(id, s) {
  if (!s || !num(s.cpu_pct)) return;
  let pts = state.history.get(id);
  if (!pts) state.history.set(id, (pts = []));
  const last = pts[pts.length - 1];
  if (last && last.t >= s.ts_ms) return;
  pts.push({ t: s.ts_ms, v: s.cpu_pct });
  if (pts.length > HISTORY) pts.splice(0, pts.length - HISTORY);
}

function applyChange(n, c) {
  if (c.op === 'host' && c.value) {
    n.host = c.value;
    if (c.value.hostname && c.value.hostname !== n.hostname) {
      n.hostname = c.value.hostname;
      state.reorder = true;
    }
    return F_META;
  }
  const coll = COLLECTIONS.includes(c.collection) ? n[c.collection] : null;
  if (!coll || c.key == null) return 0;
  if (c.op === 'upsert') coll.set(String(c.key), c.value);
  else if (c.op === 'remove') coll.delete(String(c.key));
  else return 0;
  return F_COLL;
}

// Each handler gets the message and the node it names (if known).
const handlers = {
  snapshot(m) {
    for (const id of state.nodes.keys()) mark(id, F_ALL); // so vanished rows go
    state.nodes.clear();
    for (const n of m.nodes || []) addNode(n);
    for (const id of state.history.keys()) if (!state.nodes.has(id)) state.history.delete(id);
    state.synced = state.reorder = true;
    schedule(); // render even an empty fleet
  },
  node(m) { addNode(m.node); },
  status(m, n) {
    n.connected = !!m.connected;
    if (m.last_seen != null) n.last_seen = m.last_seen;
    mark(n.id, F_META);
  },
  metrics(m, n) {
    if (!m.sample) return;
    n.resources = m.sample;
    pushHistory(n.id, m.sample);
    mark(n.id, F_RES);
  },
  diff(m, n) {
    let flags = 0;
    for (const c of m.changes || []) if (c) flags |= applyChange(n, c);
    if (m.seq != null) n.seq = m.seq;
    if (flags) mark(n.id, flags);
  },
  removed(m, n) {
    state.nodes.delete(n.id);
    state.history.delete(n.id);
    state.reorder = true;
    mark(n.id, F_ALL);
  },
};
const GLOBAL_TYPES = ['snapshot', 'node'];

function handle(msg) {
  if (!msg || !Object.prototype.hasOwnProperty.call(handlers, msg.type)) return; // unknown type
  const n = state.nodes.get(msg.id);
  if (n || GLOBAL_TYPES.includes(msg.type)) handlers[msg.type](msg, n);
}

// ---------- render scheduling ----------

function mark(id, flags) {
  state.dirty.set(id, (state.dirty.get(id) || 0) | flags);
  schedule();
}

function schedule() {
  if (!state.frame) state.frame = requestAnimationFrame(flush);
}

function flush() {
  const { dirty, reorder } = state;
  Object.assign(state, { frame: 0, dirty: new Map(), reorder: false });
  renderCounts();
  if (view) view.update(dirty, reorder);
}

function renderCounts() {
  let up = 0;
  for (const n of state.nodes.values()) if (n.connected) up++;
  const total = state.nodes.size;
  setText($('#counts'), state.synced ? `${plural(total, 'host')} · ${up} up · ${total - up} down` : '');
}

function safeDecode(s) {
  try { return decodeURIComponent(s); } catch { return s; }
}

function route() {
  if (!state.user) return;
  if (view) view.destroy();
  const m = location.hash.match(/^#\/nodes\/([^/?#]+)/);
  view = m ? detailView(safeDecode(m[1])) : fleetView();
  $('#view').replaceChildren(view.root);
  renderCounts();
  view.update(null, true);
  window.scrollTo(0, 0);
}

// ---------- fleet view ----------

const FLEET_COLS = [
  ['', 'c-status', 'Status'], ['Host', 'c-host'], ['OS', 'c-os'], ['CPU', 'c-cpu'], ['Memory', 'c-mem'],
  ['Load', 'c-num'], ['Uptime', 'c-num'], ['Agent', 'c-agent'], ['Last seen', 'c-seen'],
];

function fleetView() {
  const tbody = el('tbody');
  const head = el('tr', {}, FLEET_COLS.map(([label, cls, sr]) =>
    el('th', { scope: 'col', class: cls }, sr ? el('span', { class: 'sr-only', text: sr }) : label)));
  const wrap = el('div', { class: 'table-wrap' }, el('table', { class: 'nodes', 'data-testid': 'node-table' }, el('thead', {}, head), tbody));
  const empty = el('div', { class: 'empty', 'data-testid': 'empty', hidden: true },
    el('p', { class: 'empty-title', text: 'No hosts yet.' }),
    el('p', {}, 'Enroll one with ', el('code', { text: 'twinbay ctl join-token create' }),
      ', then run the agent on the machine with that token.'));
  const waiting = el('p', { class: 'muted', text: 'Waiting for the hub…' });
  const root = el('section', { class: 'fleet' }, el('h1', { class: 'sr-only', text: 'Fleet' }), waiting, wrap, empty);
  const rows = new Map();
  document.title = 'Fleet · twinbay';

  function update(dirty, reorder) {
    for (const id of dirty ? dirty.keys() : state.nodes.keys()) {
      const n = state.nodes.get(id);
      let row = rows.get(id);
      if (!n) {
        if (row) { row.remove(); rows.delete(id); }
        continue;
      }
      if (!row) { rows.set(id, (row = createRow(id))); reorder = true; }
      fillRow(row, n);
    }
    if (reorder) placeRows(tbody, rows);
    waiting.hidden = state.synced;
    wrap.hidden = !state.synced || rows.size === 0;
    empty.hidden = !state.synced || rows.size > 0;
  }
  return { root, update, destroy() {} };
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function placeRows(tbody, rows) {
  const sorted = [...rows.values()].sort((a, b) => collator.compare(a._name, b._name) || (a._id < b._id ? -1 : 1));
  let prev = null;
  for (const row of sorted) {
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== row) tbody.insertBefore(row, want); // move only what is out of place
    prev = row;
  }
}

function createRow(id) {
  const c = {
    dot: el('span', { class: 'dot', 'data-testid': 'conn', role: 'img' }),
    link: el('a', { href: `#/nodes/${encodeURIComponent(id)}` }),
    cpuText: el('span', { class: 'num' }), cpuBar: bar(),
    memText: el('span', { class: 'num' }), memBar: bar(),
  };
  const cell = (name, cls, ...kids) => (c[name] = el('td', { class: cls, 'data-testid': name }, ...kids));
  const tr = el('tr', { 'data-testid': 'node-row', 'data-node-id': id },
    el('td', { class: 'c-status' }, c.dot), cell('hostname', 'c-host', c.link), cell('os', 'c-os'),
    cell('cpu', 'c-cpu', c.cpuText, c.cpuBar), cell('mem', 'c-mem', c.memText, c.memBar),
    cell('load', 'c-num'), cell('uptime', 'c-num'), cell('agent', 'c-agent'), cell('seen', 'c-seen'));
  tr._c = c;
  return tr;
}

function setConn(dot, connected) {
  const label = connected ? 'connected' : 'disconnected';
  dot.dataset.connected = String(connected);
  if (dot.title !== label) { dot.title = label; dot.setAttribute('aria-label', label); }
}

function fillRow(tr, n) {
  const c = tr._c, r = n.resources, h = n.host;
  const connected = !!n.connected;
  tr._name = String(n.hostname);
  tr._id = n.id;
  tr.classList.toggle('is-down', !connected);
  setConn(c.dot, connected);
  setText(c.link, n.hostname);
  setText(c.os, h.os || '—');
  setText(c.cpuText, r ? pct(r.cpu_pct) : '—');
  setBar(c.cpuBar, r ? r.cpu_pct : null);
  const memOk = r && r.mem_total > 0;
  setText(c.memText, memOk ? `${fmtBytes(r.mem_used)} / ${fmtBytes(r.mem_total)}` : '—');
  setBar(c.memBar, memOk ? (r.mem_used / r.mem_total) * 100 : null);
  setText(c.load, r && num(r.load1) ? r.load1.toFixed(2) : '—');
  setText(c.uptime, r ? fmtDuration(r.uptime_secs) : '—');
  setText(c.agent, h.agent_version || '—');
  setText(c.seen, connected ? 'live' : fmtAgo(n.last_seen));
}

// ---------- host detail view ----------

function card(label, extra) {
  const value = el('div', { class: 'card-value' }), sub = el('div', { class: 'card-sub' });
  return { value, sub, root: el('div', { class: `card ${extra || ''}` }, el('div', { class: 'card-label', text: label }), value, sub) };
}

function detailView(id) {
  const dot = el('span', { class: 'dot dot-lg', 'data-testid': 'conn', role: 'img' });
  const title = el('h1', { class: 'host-title', tabindex: '-1', 'data-testid': 'detail-hostname', text: id });
  const status = el('span', { class: 'status-text', 'data-testid': 'detail-status' });
  const cards = { cpu: card('CPU', 'card-wide'), mem: card('Memory'), swap: card('Swap'), load: card('Load 1 / 5 / 15'), up: card('Uptime') };
  const memBar = bar(), swapBar = bar();
  cards.mem.root.append(memBar);
  cards.swap.root.append(swapBar);
  const canvas = el('canvas', { class: 'spark', 'data-testid': 'cpu-spark', role: 'img', 'aria-label': 'CPU usage since this page opened' });
  const sparkNote = el('div', { class: 'spark-note' });
  cards.cpu.root.append(canvas, sparkNote);
  const ident = el('dl', { class: 'ident', 'data-testid': 'identity' });
  const sec = {};
  const section = (key, label) => el('section', { class: 'panel', 'data-testid': `section-${key}` },
    el('h2', { text: label }), (sec[key] = el('div')));
  const missing = el('p', { class: 'empty', hidden: true });
  const body = el('div', { class: 'detail-body' },
    el('div', { class: 'cards' }, Object.values(cards).map((c) => c.root)),
    section('sources', 'Sources'),
    el('section', { class: 'panel' }, el('h2', { text: 'Identity' }), ident),
    section('containers', 'Containers'), section('units', 'Units'), section('ports', 'Listening ports'));
  const root = el('section', { class: 'detail' },
    el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, el('a', { href: '#/', text: '← All hosts' })),
    el('header', { class: 'detail-head' }, dot, title, status), missing, body);

  const draw = () => drawSpark(canvas, state.history.get(id) || [], sparkNote);
  const resize = new ResizeObserver(draw);
  resize.observe(canvas);
  const scheme = matchMedia('(prefers-color-scheme: dark)');
  scheme.addEventListener('change', draw);
  requestAnimationFrame(() => title.focus({ preventScroll: true }));

  function update(dirty) {
    const f = dirty ? dirty.get(id) || 0 : F_ALL;
    if (!f) return;
    const n = state.nodes.get(id);
    body.hidden = !n;
    missing.hidden = !!n;
    if (!n) {
      setText(missing, state.synced ? 'This host is not part of the fleet (it may have been removed).' : 'Waiting for the hub…');
      return;
    }
    if (f & F_META) renderHead(n, dot, title, status, ident);
    if (f & (F_META | F_RES)) { renderCards(n, cards, memBar, swapBar); draw(); }
    if (f & F_COLL) renderCollections(n, sec);
  }
  return { id, root, update, destroy() { resize.disconnect(); scheme.removeEventListener('change', draw); } };
}

function renderHead(n, dot, title, status, ident) {
  setConn(dot, !!n.connected);
  setText(title, n.hostname);
  setText(status, n.connected ? 'connected' : `disconnected · last seen ${fmtAgo(n.last_seen)}`);
  document.title = `${n.hostname} · twinbay`;
  const h = n.host;
  const rows = [
    ['Hostname', h.hostname || n.hostname], ['OS', h.os], ['Kernel', h.kernel], ['Architecture', h.arch],
    ['CPU cores', h.cpu_cores], ['Boot time', h.boot_time ? fmtDate(h.boot_time * 1000) : ''],
    ['Agent version', h.agent_version], ['Node ID', n.id],
  ];
  for (const [k, v] of Object.entries(h.labels || {})) rows.push([`label ${k}`, v]);
  ident.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v || v === 0 ? String(v) : '—' })]));
}

function renderCards(n, cards, memBar, swapBar) {
  const r = n.resources;
  const cores = n.host.cpu_cores;
  setText(cards.cpu.value, r ? pct(r.cpu_pct) : '—');
  setText(cards.cpu.sub, cores ? `${plural(cores, 'core')}` : '');
  const memPct = r && r.mem_total > 0 ? (r.mem_used / r.mem_total) * 100 : null;
  setText(cards.mem.value, memPct == null ? '—' : pct(memPct));
  setText(cards.mem.sub, r ? `${fmtBytes(r.mem_used)} of ${fmtBytes(r.mem_total)} · ${fmtBytes(r.mem_available)} available` : '');
  setBar(memBar, memPct);
  const swapPct = r && r.swap_total > 0 ? (r.swap_used / r.swap_total) * 100 : null;
  setText(cards.swap.value, !r ? '—' : swapPct == null ? 'none' : pct(swapPct));
  setText(cards.swap.sub, swapPct == null ? '' : `${fmtBytes(r.swap_used)} of ${fmtBytes(r.swap_total)}`);
  setBar(swapBar, swapPct);
  const load = (v) => (num(v) ? v.toFixed(2) : '—');
  setText(cards.load.value, r ? load(r.load1) : '—');
  const perCore = r && cores ? ` · ${((r.load1 / cores) * 100).toFixed(0)}% of ${plural(cores, 'core')}` : '';
  setText(cards.load.sub, r ? `5m ${load(r.load5)} · 15m ${load(r.load15)}${perCore}` : '');
  setText(cards.up.value, r ? fmtDuration(r.uptime_secs) : '—');
  setText(cards.up.sub, r ? `sampled ${fmtAgo(r.ts_ms)}` : '');
}

function drawSpark(canvas, pts, note) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * dpr), h = Math.round(canvas.clientHeight * dpr);
  setText(note, pts.length < 2 ? 'collecting live samples…' : `last ${pts.length} samples`);
  if (!w || !h) return;
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  if (pts.length < 2) return;
  const step = w / (HISTORY - 1), x0 = w - (pts.length - 1) * step, pad = 2 * dpr;
  const y = (v) => h - pad - (clamp(v) / 100) * (h - 2 * pad);
  ctx.beginPath();
  pts.forEach((p, i) => (i ? ctx.lineTo(x0 + i * step, y(p.v)) : ctx.moveTo(x0, y(p.v))));
  const color = getComputedStyle(canvas).color; // follows the theme's --accent
  Object.assign(ctx, { strokeStyle: color, fillStyle: color, lineWidth: 1.5 * dpr, lineJoin: 'round' });
  ctx.stroke();
  ctx.lineTo(w, h);
  ctx.lineTo(x0, h);
  ctx.globalAlpha = 0.15;
  ctx.fill(); // soft area under the line
  ctx.globalAlpha = 1;
}

function dataTable(testid, cols, items) {
  if (!items.length) return el('p', { class: 'none', text: 'none reported' });
  const cell = (v) => (v == null || v === '' ? '—' : typeof v === 'object' ? v : String(v));
  return el('div', { class: 'table-wrap' }, el('table', { class: 'data', 'data-testid': testid },
    el('thead', {}, el('tr', {}, cols.map(([label]) => el('th', { scope: 'col', text: label })))),
    el('tbody', {}, items.map((it) => el('tr', {}, cols.map(([, get]) => el('td', {}, cell(get(it)))))))));
}

const TONES = {
  running: 'ok', healthy: 'ok', active: 'ok', restarting: 'warn', paused: 'warn', starting: 'warn',
  activating: 'warn', deactivating: 'warn', reloading: 'warn', unhealthy: 'crit', dead: 'crit', failed: 'crit',
};
const byName = (a, b) => String(a.name || '').localeCompare(String(b.name || ''));

function containerState(c) {
  const tone = c.state === 'exited' && c.exit_code ? 'crit' : TONES[c.state];
  return badge(c.state === 'exited' && c.exit_code != null ? `exited (${c.exit_code})` : c.state, tone);
}

function renderCollections(n, sec) {
  const containers = [...n.containers.values()].filter(Boolean).sort(byName);
  sec.containers.replaceChildren(dataTable('containers', [
    ['Name', (c) => el('span', {}, c.name || c.id, c.compose_project ? el('span', { class: 'muted', text: ` · ${c.compose_project}` }) : null)],
    ['Image', (c) => c.image], ['State', containerState], ['Health', (c) => badge(c.health, TONES[c.health])],
    ['Restarts', (c) => c.restart_count], ['Ports', (c) => (c.ports || []).join(', ')],
  ], containers));
  const units = [...n.units.values()].filter(Boolean).sort(byName);
  sec.units.replaceChildren(dataTable('units', [
    ['Unit', (u) => u.name], ['Description', (u) => u.description],
    ['State', (u) => badge([u.active_state, u.sub_state].filter(Boolean).join(' / '), TONES[u.active_state])],
    ['Load', (u) => u.load_state], ['Since', (u) => (u.since ? fmtAgo(u.since * 1000) : '')],
  ], units));
  const ports = [...n.ports.values()].filter(Boolean).sort((a, b) => a.port - b.port || String(a.protocol).localeCompare(b.protocol));
  sec.ports.replaceChildren(dataTable('ports', [
    ['Protocol', (p) => p.protocol], ['Address', (p) => p.address], ['Port', (p) => p.port],
    ['Process', (p) => (p.process ? `${p.process}${p.pid != null ? ` (pid ${p.pid})` : ''}` : '')],
  ], ports));
  renderSources(n, sec.sources);
}

function renderSources(n, box) {
  const entries = [...n.sources.entries()].sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return box.replaceChildren(el('p', { class: 'none', text: 'none reported' }));
  box.replaceChildren(el('ul', { class: 'sources' }, entries.map(([key, s]) => (s && s.available === false
    ? el('li', { class: 'source-warn', 'data-testid': 'source-warning' },
      el('strong', { text: s.name || key }), ` — source unavailable: ${s.reason || 'no reason given'}`)
    : el('li', { class: 'source-ok' }, el('strong', { text: (s && s.name) || key }), ' — available')))));
}

// ---------- boot ----------

function refreshRelativeTimes() {
  for (const n of state.nodes.values()) if (!n.connected) mark(n.id, F_META);
  if (view && view.id && state.nodes.has(view.id)) mark(view.id, F_META | F_RES);
}

async function boot() {
  $('#signin-form').addEventListener('submit', onSignIn);
  $('#signout').addEventListener('click', onSignOut);
  window.addEventListener('hashchange', route);
  setInterval(refreshRelativeTimes, 15000);
  try {
    const r = await api('GET', '/api/v1/session');
    if (r.ok && r.data) return signedIn(r.data);
  } catch { /* hub unreachable: fall through to sign-in */ }
  showSignIn();
}

boot();
