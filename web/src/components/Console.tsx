// The command console: one command's output as it arrives (stdout and
// stderr told apart), its status, Cancel while it runs. Docked at the bottom
// of the shell, so the screen above stays live (a restarted container's
// state changes there while the console runs). Lines are drawn straight into
// the DOM, at most one sync per frame, and capped (commands.ts MAX_LINES).

import { useContext, useEffect, useReducer, useRef, useState } from 'preact/hooks';
import { can, RoleContext } from '../access';
import { answerConfirm, cancelCommand, closeConsole, commands, MAX_LINES, subscribeCommands, type Session } from '../commands';
import { durationMs } from '../format';
import { fleet } from '../store';
import { Badge } from './bits';
import { Confirm } from './Confirm';

const TONE: Record<string, string> = {
  starting: 'warn', running: 'warn', ok: 'ok', failed: 'bad', refused: 'bad', timed_out: 'bad', lost: 'bad', error: 'bad', cancelled: 'muted',
};

/** Re-renders on every change of the console's store. */
export function useCommands() {
  const [, tick] = useReducer((n: number) => n + 1, 0);
  useEffect(() => subscribeCommands(() => tick(0)), []);
  return commands;
}

/** The console and the stop/restart confirmation, wherever the user is. */
export function CommandLayer() {
  const c = useCommands();
  return (
    <>
      {c.confirm && (
        <Confirm title={c.confirm.title} confirmLabel={c.confirm.label} onConfirm={async () => answerConfirm(true)} onCancel={() => answerConfirm(false)}>
          {c.confirm.body}
        </Confirm>
      )}
      {c.session && <Console key={c.session.key} s={c.session} />}
    </>
  );
}

function Output({ s }: { s: Session }) {
  const ref = useRef<HTMLDivElement>(null);
  const [count, setCount] = useState({ lines: 0, dropped: 0 });
  useEffect(() => {
    const el = ref.current!;
    let last = -1; // the newest line drawn
    const sync = () => {
      const lines = s.out.lines;
      const stick = el.scrollHeight - el.scrollTop - el.clientHeight < 32;
      const first = lines.length ? lines[0].n : last + 1;
      while (el.firstElementChild && Number((el.firstElementChild as HTMLElement).dataset.n) < first) el.firstElementChild.remove();
      // The newest line drawn may have grown since.
      const i = last - first;
      if (i >= 0 && i < lines.length && el.lastElementChild && el.lastElementChild.textContent !== lines[i].text) el.lastElementChild.textContent = lines[i].text;
      const frag = document.createDocumentFragment();
      for (let j = Math.max(0, last - first + 1); j < lines.length; j++) {
        const line = lines[j];
        const div = document.createElement('div');
        div.className = `ln ${line.stream}`;
        div.dataset.n = String(line.n);
        div.textContent = line.text;
        frag.appendChild(div);
        last = line.n;
      }
      el.appendChild(frag);
      if (stick) el.scrollTop = el.scrollHeight;
      setCount({ lines: lines.length, dropped: s.out.dropped });
    };
    sync();
    return s.out.subscribe(sync);
  }, [s]);
  return (
    <>
      <div ref={ref} class="console-out" role="log" aria-live="off" aria-label="Output" tabIndex={0} data-testid="console-output" data-lines={count.lines} data-dropped={count.dropped} />
      {count.dropped > 0 && (
        <p class="console-foot muted small" data-testid="console-dropped">
          Showing the last {MAX_LINES} lines; {count.dropped} older {count.dropped === 1 ? 'line was' : 'lines were'} dropped.
        </p>
      )}
    </>
  );
}

function Console({ s }: { s: Session }) {
  const role = useContext(RoleContext);
  const head = useRef<HTMLHeadingElement>(null);
  const [now, setNow] = useState(Date.now());
  const running = s.phase !== 'ended';

  useEffect(() => head.current?.focus(), []);
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [running]);

  const r = s.record;
  const status = s.status;
  const host = fleet.nodes.get(s.nodeId)?.hostname ?? s.nodeId;
  const took = r?.duration_ms ?? (r ? Math.max(0, (r.ended_ms ?? Math.max(now, Date.now())) - r.started_ms) : null);
  const error = s.error || r?.error || '';
  const canCancel = running && can(role, 'command.cancel') && (!!r || s.streamed);

  return (
    <section
      class="console"
      aria-labelledby="console-title"
      data-testid="console"
      data-status={status}
      data-command={r?.id ?? ''}
      onKeyDown={(e) => {
        if (e.key === 'Escape') closeConsole();
      }}
    >
      <div class="console-head">
        <h2 id="console-title" ref={head} tabIndex={-1} data-testid="console-title">
          {r?.summary || s.title}
        </h2>
        <span class="muted small">on {host}</span>
        <span class="console-status" data-testid="console-status" data-status={status}>
          <span role="status">
            <Badge text={status === 'starting' ? 'starting…' : status.replace('_', ' ')} tone={TONE[status]} />
          </span>
          {r?.exit_code != null && (
            <span class="num small" data-testid="console-exit">
              exit {r.exit_code}
            </span>
          )}
          {took != null && <span class="num small muted" data-testid="console-duration">{durationMs(took)}</span>}
          {s.live && running && <span class="small muted">{s.streamed ? 'following' : 'live'}</span>}
          {r?.truncated && <span class="small warn-text">output truncated</span>}
        </span>
        <span class="legend small" aria-hidden="true">
          <span class="ln-key stdout">stdout</span>
          <span class="ln-key stderr">stderr</span>
        </span>
        <span class="spacer" />
        {canCancel && (
          <button type="button" class="btn btn-small btn-danger-outline" onClick={() => cancelCommand(s)} disabled={s.cancelling} data-testid="console-cancel">
            {s.cancelling ? 'Cancelling…' : s.streamed && r?.op?.verb === 'logs' ? 'Stop following' : 'Cancel'}
          </button>
        )}
        <button
          type="button"
          class="btn btn-small"
          onClick={closeConsole}
          title={running ? (s.streamed ? 'Closing stops it' : 'Closing stops watching; the command goes on') : undefined}
          data-testid="console-close"
        >
          Close
        </button>
      </div>
      {error && (
        <p class="form-error console-error" role="alert" data-testid="console-error">
          {error}
        </p>
      )}
      <Output s={s} />
    </section>
  );
}
