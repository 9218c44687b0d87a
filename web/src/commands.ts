// Commands on hosts (docs/commands.md): running one, watching its output as
// it arrives, cancelling it; the one console that shows it; the confirmation
// that stop and restart ask for. Screens call `runCommand`, `watchCommand` or
// `askToRun`; the console (components/Console.tsx, in the shell) draws the
// session and stays open across screens.

import { api, ApiError, openStream } from './api';
import { FrameListeners } from './frames';
import type { CommandMessage, CommandRecord, CommandRequest, OutputChunk, Policy, Target, TargetKind, Verb } from './types';

/** Lines the console keeps; older ones are dropped so `logs -f` can run for hours. */
export const MAX_LINES = 5000;
/** A line longer than this is broken (output without newlines must not grow one DOM node forever). */
const MAX_LINE = 8192;

/** What the agent answers when it has no policy file (docs/commands.md). */
export const DEFAULT_LIFECYCLE: Record<TargetKind, Verb[]> = {
  container: ['status', 'version', 'logs', 'start', 'stop', 'restart'],
  unit: ['status', 'version', 'logs', 'start', 'stop', 'restart'],
  user_unit: ['status', 'version', 'logs', 'start', 'stop', 'restart'],
  agent: ['status', 'version', 'logs', 'restart'],
};

/** The verbs the node's agent answers for a kind of target: its policy's, or the defaults.
 * `update` needs a release version, which these buttons have no way to ask for (docs/updates.md). */
export function verbsFor(policy: Policy | null | undefined, kind: TargetKind): Verb[] {
  return (policy?.lifecycle?.[kind] ?? DEFAULT_LIFECYCLE[kind]).filter((v) => v !== 'update');
}

/** Verbs that change something: asked for again before they run. */
export const CONFIRM: Partial<Record<Verb, true>> = { stop: true, restart: true };

/** Re-reads (every 250 ms) of a record whose live feed ended while it still said running. */
const REREADS = 20;

/** How many lines `logs` asks for before following. */
export const LOG_LINES = 100;

export const ENDED = (s: string) => s !== 'running';

export interface Line {
  /** Sequence number, for the console's DOM sync. */
  n: number;
  stream: 'stdout' | 'stderr' | 'meta';
  text: string;
  /** Not ended by a newline yet: more of it may come. */
  open: boolean;
}

/** The output as lines, capped at MAX_LINES (oldest dropped). */
export class OutputBuffer {
  lines: Line[] = [];
  /** Lines dropped from the front so far. */
  dropped = 0;
  private next = 0;
  private listeners = new FrameListeners();

  push(stream: Line['stream'], data: string) {
    if (!data) return;
    const parts = data.split('\n');
    parts.forEach((part, i) => {
      const last = i === parts.length - 1;
      if (last && part === '') return; // the data ended with a newline
      const tail = this.lines[this.lines.length - 1];
      if (i === 0 && tail && tail.open && tail.stream === stream && tail.text.length + part.length <= MAX_LINE) {
        tail.text += part;
        tail.open = last;
        return;
      }
      for (let at = 0; at < part.length || at === 0; at += MAX_LINE) {
        const piece = part.slice(at, at + MAX_LINE);
        const more = at + MAX_LINE < part.length;
        this.lines.push({ n: this.next++, stream, text: piece, open: last && !more });
        if (!more) break;
      }
    });
    if (this.lines.length > MAX_LINES) {
      const drop = this.lines.length - MAX_LINES;
      this.lines.splice(0, drop);
      this.dropped += drop;
    }
    this.notify();
  }

  /** A line of the console's own (a refusal, the stream ending). */
  note(text: string) {
    const tail = this.lines[this.lines.length - 1];
    if (tail) tail.open = false;
    this.push('meta', `${text}\n`);
  }

  subscribe(fn: () => void): () => void {
    return this.listeners.subscribe(fn);
  }

  /** One notification per animation frame, however many chunks arrived. */
  private notify() {
    this.listeners.notify();
  }
}

export type Phase = 'starting' | 'running' | 'ended';

/** One command in the console: started here, or opened from the history. */
let sessions = 0;

export class Session {
  readonly key = ++sessions;
  readonly out = new OutputBuffer();
  record: CommandRecord | null = null;
  phase: Phase = 'starting';
  /** Why it did not run, or why watching it stopped. */
  error = '';
  /** The console is following its output live. */
  live = false;
  cancelling = false;
  private ctl = new AbortController();

  constructor(
    readonly nodeId: string,
    readonly title: string,
    /** Started with `stream: true`: leaving cancels it. */
    readonly streamed: boolean,
  ) {}

  get status(): string {
    if (this.record) return this.record.status;
    return this.phase === 'ended' ? 'error' : 'starting';
  }

  get signal() {
    return this.ctl.signal;
  }

  /** Stops reading (and, for a streamed run, the command on the host). */
  abort() {
    this.ctl.abort();
  }

  /** Output arrived from the live feed. */
  gotOutput = false;

  /** Applies one NDJSON message. */
  apply(msg: CommandMessage) {
    if (msg.type === 'output') {
      this.gotOutput = true;
      this.out.push(msg.stream === 'stderr' ? 'stderr' : 'stdout', msg.data);
      return;
    }
    if (msg.type === 'error') {
      this.out.note(msg.message);
      return;
    }
    if (msg.type !== 'command' && msg.type !== 'result') return; // a message this UI does not know yet
    const { type, command, ...flat } = msg;
    const rec = (command ?? flat) as CommandRecord;
    if (!rec.id) return;
    this.record = rec;
    // A result still saying "running" is not the end (older hubs could answer so): follow() re-reads it.
    this.phase = ENDED(rec.status) ? 'ended' : 'running';
    changed();
  }

  /** Stored output of a finished command. */
  replay(chunks: OutputChunk[]) {
    for (const c of chunks) this.out.push(c.stream === 'stderr' ? 'stderr' : 'stdout', c.data);
  }
}

// ---- The store: the console's session and the pending confirmation ---------

export interface PendingConfirm {
  title: string;
  body: string;
  label: string;
  run: () => void;
}

export const commands = {
  session: null as Session | null,
  confirm: null as PendingConfirm | null,
  /** Bumped whenever a command seen here ends (the history re-reads). */
  ended: 0,
  version: 0,
};

type Listener = () => void;
const listeners = new Set<Listener>();

function changed() {
  commands.version++;
  for (const fn of listeners) fn();
}

export function subscribeCommands(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Closes the console; a streamed run (logs -f) is cancelled, others go on. */
export function closeConsole() {
  const s = commands.session;
  commands.session = null;
  s?.abort();
  changed();
}

function open(s: Session) {
  commands.session?.abort();
  commands.session = s;
  changed();
}

function finish(s: Session) {
  s.phase = 'ended';
  s.live = false;
  commands.ended++;
  changed();
}

/** Reads an NDJSON body to the end, a message at a time. */
async function readMessages(res: Response, s: Session) {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const line = (text: string) => {
    if (!text.trim()) return;
    let msg: CommandMessage;
    try {
      msg = JSON.parse(text);
    } catch {
      return; // not a message: skip it rather than stop reading
    }
    s.apply(msg);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      line(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
  line(buf + dec.decode());
}

/** Follows a started command's output until its result (or the console closes). */
async function follow(s: Session, res: Response) {
  s.live = true;
  changed();
  try {
    await readMessages(res, s);
  } catch (err) {
    if (s.signal.aborted) return;
    s.out.note(`reading the output stopped: ${(err as Error).message}`);
  }
  if (s.signal.aborted) return;
  // The feed ended without a final result (it ended before it could be
  // followed, or the hub went away): the
  // stored record, re-read for a few seconds while it still says running, and
  // its output if none came live.
  if (s.record && s.phase !== 'ended') {
    try {
      for (let i = 0; ; i++) {
        const { output, ...rec } = await api.command(s.record.id);
        if (s.signal.aborted) return;
        if (rec.status !== 'running' || i >= REREADS) {
          s.record = rec;
          if (!s.gotOutput && output?.length) s.replay(output);
          if (rec.status === 'running') s.out.note('the live output ended; the command is still running (see the history)');
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    } catch (err) {
      s.out.note(`the live output ended: ${(err as Error).message}`);
    }
  }
  finish(s);
}

function refused(s: Session, err: unknown) {
  if (s.signal.aborted) return;
  s.error = err instanceof ApiError ? err.message : (err as Error).message || String(err);
  finish(s);
}

/** Runs a command and shows it in the console. */
export async function runCommand(node: { id: string }, title: string, req: CommandRequest) {
  const streamed = !!req.stream;
  const s = new Session(node.id, title, streamed);
  open(s);
  const path = `/api/v1/nodes/${encodeURIComponent(node.id)}/commands`;
  try {
    if (streamed) {
      // The answer is the live output; closing the console ends the request, which cancels it.
      const res = await openStream('POST', path, req, s.signal);
      await follow(s, res);
    } else {
      const rec = await api.runCommand(node.id, req);
      s.record = rec;
      s.phase = ENDED(rec.status) ? 'ended' : 'running';
      changed();
      const res = await openStream('GET', `/api/v1/commands/${encodeURIComponent(rec.id)}/output`, undefined, s.signal);
      await follow(s, res);
    }
  } catch (err) {
    refused(s, err);
  }
}

/** Opens a command from the history: its stored output, or the live one while it runs. */
export async function watchCommand(node: { id: string }, rec: CommandRecord) {
  const s = new Session(node.id, rec.summary, false);
  s.record = rec;
  open(s);
  try {
    const full = await api.command(rec.id);
    if (s.signal.aborted) return;
    const { output, ...r } = full;
    s.record = r;
    if (r.status === 'running') {
      s.phase = 'running';
      changed();
      const res = await openStream('GET', `/api/v1/commands/${encodeURIComponent(r.id)}/output`, undefined, s.signal);
      await follow(s, res);
    } else {
      s.replay(output ?? []);
      if (r.truncated) s.out.note('(the stored output is truncated)');
      s.phase = 'ended';
      changed();
    }
  } catch (err) {
    refused(s, err);
  }
}

/** Cancels the console's command on the host (DELETE), or stops a streamed run. */
export async function cancelCommand(s: Session) {
  if (s.phase === 'ended' || s.cancelling) return;
  s.cancelling = true;
  changed();
  try {
    if (s.record) await api.cancelCommand(s.record.id);
    else s.abort();
  } catch (err) {
    // 409: it ended meanwhile (the result is on its way). Otherwise a streamed run can still be stopped by leaving.
    if (!(err instanceof ApiError && err.status === 409)) {
      if (s.streamed) s.abort();
      s.out.note(`cancel: ${(err as Error).message}`);
      if (s.streamed) finish(s);
    }
  } finally {
    s.cancelling = false;
    changed();
  }
}

// ---- Lifecycle verbs ---------------------------------------------------------

const NOUN: Record<TargetKind, string> = { container: 'container', unit: 'unit', user_unit: 'user unit', agent: 'agent' };

export function targetLabel(t: Target): string {
  return t.kind === 'agent' ? 'the agent' : `${NOUN[t.kind]} ${t.name}`;
}

/** Runs a lifecycle verb (logs follow live); stop and restart ask first. */
export function runVerb(node: { id: string; hostname: string }, target: Target, verb: Verb) {
  const title = `${verb} ${targetLabel(target)}`;
  const go = () => {
    // Logs of a container or a unit follow live (closing the console stops them); the agent's are its recent log.
    if (verb === 'logs' && target.kind !== 'agent') void runCommand(node, title, { op: 'lifecycle', target, verb, lines: LOG_LINES, follow: true, stream: true });
    else if (verb === 'logs') void runCommand(node, title, { op: 'lifecycle', target, verb, lines: LOG_LINES });
    else void runCommand(node, title, { op: 'lifecycle', target, verb });
  };
  if (!CONFIRM[verb]) return go();
  commands.confirm = {
    title: `${verb === 'stop' ? 'Stop' : 'Restart'} ${targetLabel(target)}?`,
    body:
      verb === 'stop'
        ? `On ${node.hostname}. It stays stopped until someone starts it again.`
        : target.kind === 'agent'
          ? `On ${node.hostname}. The agent restarts its sources and its link to the hub; the host's live data pauses briefly.`
          : `On ${node.hostname}. It stops, then starts again; what it serves is briefly unavailable.`,
    label: verb === 'stop' ? 'Stop' : 'Restart',
    run: go,
  };
  changed();
}

export function answerConfirm(yes: boolean) {
  const c = commands.confirm;
  commands.confirm = null;
  changed();
  if (yes) c?.run();
}

/** `k=v` pairs, one a line or comma-separated; a string says what is wrong. */
export function parseArgs(text: string): Record<string, string> | string {
  const args: Record<string, string> = {};
  for (const part of text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) return `argument ${JSON.stringify(part)} is not KEY=VALUE`;
    args[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return args;
}
