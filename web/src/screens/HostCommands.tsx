// A host's actions (from its agent's policy, a form per action, checked here
// before the hub and the agent check again) and its command history.

import { useContext, useEffect, useState } from 'preact/hooks';
import { atLeast, can, canRunAction, RoleContext } from '../access';
import { api } from '../api';
import { Badge, Empty, ErrorBox } from '../components/bits';
import { useCommands } from '../components/Console';
import { useFleet } from '../useFleet';
import { runCommand, watchCommand } from '../commands';
import { bytes, clock, durationMs } from '../format';
import type { ActionArg, ActionSpec, CommandRecord, NodeView, Policy } from '../types';

// ---- Checking an argument as the agent will (docs/commands.md) -------------

const CONTROL = /[\u0000-\u001f\u007f]/;
/** Without a pattern: letters, digits, space and ._-:/@+=,% */
const PLAIN = /^[\p{L}\p{N} ._:/@+=,%-]*$/u;

function patternOf(p: string): RegExp | null {
  try {
    return new RegExp(`^(?:${p})$`, 'u');
  } catch {
    return null; // a pattern this browser cannot read: the agent checks it
  }
}

/** Why a value breaks the argument's schema, or '' if it does not. Empty values are the caller's. */
export function checkArg(a: ActionArg, v: string): string {
  const len = [...v].length;
  switch (a.type) {
    case 'string': {
      const max = a.max_len ?? 256;
      if (len > max) return `at most ${max} characters`;
      if (CONTROL.test(v)) return 'no control characters';
      if (v.startsWith('-') && !a.allow_leading_dash) return 'must not start with - (a program would read it as an option)';
      if (a.pattern) {
        const re = patternOf(a.pattern);
        if (re && !re.test(v)) return `must match ${a.pattern}`;
      } else if (!PLAIN.test(v)) return 'letters, digits, space and ._-:/@+=,% only';
      return '';
    }
    case 'int': {
      if (!/^[+-]?\d+$/.test(v)) return 'a whole number';
      if (v.startsWith('-') && !(a.min != null && a.min < 0)) return 'not negative';
      const n = Number(v);
      if (a.min != null && n < a.min) return `at least ${a.min}`;
      if (a.max != null && n > a.max) return `at most ${a.max}`;
      return '';
    }
    case 'bool':
      return v === 'true' || v === 'false' ? '' : 'true or false';
    case 'enum':
      return (a.values ?? []).includes(v) ? '' : `one of ${(a.values ?? []).join(', ')}`;
    case 'path': {
      const max = a.max_len ?? 4096;
      const under = (a.under || '/').replace(/\/+$/, '');
      if (new TextEncoder().encode(v).length > max) return `at most ${max} bytes`;
      if (!PLAIN.test(v)) return 'letters, digits, space and ._-:/@+=,% only';
      if (!v.startsWith('/')) return 'an absolute path (starting with /)';
      const parts = v.split('/').slice(1);
      if (parts.some((c, i) => c === '..' || c === '.' || (c === '' && i + 1 < parts.length))) return 'no . or .. and no //';
      if (!(under === '' || v === under || v.startsWith(`${under}/`))) return `inside ${under}`;
      return '';
    }
    default:
      return '';
  }
}

function initial(a: ActionArg): string {
  if (a.default != null) return String(a.default);
  return a.type === 'bool' ? 'false' : '';
}

// ---- Actions ----------------------------------------------------------------

function ArgField({ action, a, value, error, onChange }: { action: string; a: ActionArg; value: string; error: string; onChange: (v: string) => void }) {
  const id = `act-${action}-${a.name}`;
  const help = [a.description, a.type === 'path' ? `an absolute path inside ${a.under || '/'}` : '', a.type === 'int' && (a.min != null || a.max != null) ? `${a.min ?? '…'} to ${a.max ?? '…'}` : '']
    .filter(Boolean)
    .join(' · ');
  const described = [help ? `${id}-help` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  const common = { id, name: a.name, 'aria-invalid': error ? true : undefined, 'aria-describedby': described, 'data-testid': `arg-${a.name}` };
  let input;
  if (a.type === 'bool') {
    input = <input type="checkbox" {...common} checked={value === 'true'} onChange={(e) => onChange(e.currentTarget.checked ? 'true' : 'false')} />;
  } else if (a.type === 'enum') {
    input = (
      <select {...common} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {!a.required || !value ? <option value="">{a.required ? 'Choose…' : '(none)'}</option> : null}
        {(a.values ?? []).map((v) => (
          <option key={v} value={v}>
            {v}
          </option>
        ))}
      </select>
    );
  } else if (a.type === 'int') {
    input = <input type="number" step={1} min={a.min ?? undefined} max={a.max ?? undefined} {...common} value={value} onInput={(e) => onChange(e.currentTarget.value)} />;
  } else {
    const max = a.max_len ?? (a.type === 'path' ? 4096 : 256);
    input = (
      <input
          type="text"
          spellcheck={false}
          autocomplete="off"
          maxLength={max}
          pattern={a.type === 'string' && a.pattern && patternOf(a.pattern) ? a.pattern : undefined}
          placeholder={a.type === 'path' ? `${(a.under || '').replace(/\/+$/, '')}/…` : undefined}
          {...common}
          value={value}
          onInput={(e) => onChange(e.currentTarget.value)}
        />
    );
  }
  return (
    <div class={`field arg-field${a.type === 'bool' ? ' arg-bool' : ''}`}>
      <label for={id}>
        <span class="mono">{a.name}</span>
        {a.required ? <span class="req"> (required)</span> : null} <span class="muted small">{a.type}</span>
      </label>
      {input}
      {help && (
        <p class="hint" id={`${id}-help`}>
          {help}
        </p>
      )}
      {error && (
        <p class="field-error" id={`${id}-error`} data-testid={`arg-error-${a.name}`}>
          {error}
        </p>
      )}
    </div>
  );
}

function ActionCard({ node, name, spec }: { node: NodeView; name: string; spec: ActionSpec }) {
  const role = useContext(RoleContext);
  const args = spec.args ?? [];
  const [values, setValues] = useState<Record<string, string>>(() => Object.fromEntries(args.map((a) => [a.name, initial(a)])));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const allowed = canRunAction(role, spec.role);
  const needs = spec.role && spec.role !== 'viewer' ? spec.role : 'operator';

  const submit = (e: Event) => {
    e.preventDefault();
    const errs: Record<string, string> = {};
    const out: Record<string, string> = {};
    for (const a of args) {
      const v = a.type === 'bool' ? values[a.name] || 'false' : (values[a.name] ?? '').trim() === '' ? '' : values[a.name];
      if (v === '') {
        if (a.required) errs[a.name] = 'required';
        continue;
      }
      const why = checkArg(a, v);
      if (why) errs[a.name] = why;
      else out[a.name] = v;
    }
    setErrors(errs);
    const bad = args.find((a) => errs[a.name]);
    if (bad) {
      (e.currentTarget as HTMLFormElement).querySelector<HTMLElement>(`[name="${CSS.escape(bad.name)}"]`)?.focus();
      return;
    }
    void runCommand(node, `action ${name}`, { op: 'action', name, args: out });
  };

  return (
    <form class="panel action-card" onSubmit={submit} noValidate data-testid="action" data-action={name} aria-labelledby={`act-${name}-title`}>
      <div class="panel-head">
        <h2 id={`act-${name}-title`} class="mono">
          {name}
        </h2>
        <Badge text={`${needs}+`} tone="muted" />
        <span class="muted small">
          {[spec.timeout_secs ? `times out after ${durationMs(spec.timeout_secs * 1000)}` : '', spec.output_cap ? `output up to ${bytes(spec.output_cap)}` : ''].filter(Boolean).join(' · ')}
        </span>
      </div>
      {spec.description && <p class="action-desc">{spec.description}</p>}
      {args.length > 0 && (
        <div class="action-args">
          {args.map((a) => (
            <ArgField key={a.name} action={name} a={a} value={values[a.name] ?? ''} error={errors[a.name] ?? ''} onChange={(v) => setValues((old) => ({ ...old, [a.name]: v }))} />
          ))}
        </div>
      )}
      <div class="action-foot">
        <button type="submit" class="btn btn-primary" disabled={!allowed || !node.connected} data-testid="action-run">
          Run
        </button>
        {!allowed ? (
          <span class="muted small">Needs the {needs} role.</span>
        ) : !node.connected ? (
          <span class="muted small">The agent is not connected.</span>
        ) : null}
      </div>
    </form>
  );
}

/** The node's policy: from the live twin, or read once if the stream does not carry it. */
function usePolicy(node: NodeView): Policy | null | undefined {
  const [read, setRead] = useState<{ id: string; policy: Policy | null } | null>(null);
  const known = node.policy !== undefined;
  useEffect(() => {
    if (known) return;
    let live = true;
    api.node(node.id).then(
      (n) => live && setRead({ id: node.id, policy: n.policy ?? null }),
      () => live && setRead({ id: node.id, policy: null }),
    );
    return () => {
      live = false;
    };
  }, [node.id, known]);
  if (known) return node.policy;
  return read && read.id === node.id ? read.policy : undefined;
}

export function ActionsTab({ node }: { node: NodeView }) {
  const policy = usePolicy(node);
  if (policy === undefined) return <p class="muted">Loading…</p>;
  const actions = Object.entries(policy?.actions ?? {}).sort((a, b) => a[0].localeCompare(b[0]));
  if (actions.length === 0)
    return (
      <Empty title="No actions on this host" testId="actions-empty">
        Actions are named commands that the agent's policy file defines, with a schema for their arguments: <code>policy.yaml</code> in the agent's state
        directory, or <code>--policy FILE</code> (docs/commands.md). Lifecycle verbs (start, stop, restart, logs) are on the Containers and Units tabs.
      </Empty>
    );
  return (
    <div class="actions" data-testid="section-actions">
      {actions.map(([name, spec]) => (
        <ActionCard key={`${node.id}/${name}`} node={node} name={name} spec={spec} />
      ))}
    </div>
  );
}

// ---- History ----------------------------------------------------------------

const TONE: Record<string, string> = { running: 'warn', ok: 'ok', failed: 'bad', refused: 'bad', timed_out: 'bad', lost: 'bad', cancelled: 'muted' };
/** Shown per host, newest first. */
const SHOWN = 50;

/** The list as read, with what the stream said since: newer states replace rows, new commands go on top. */
function merged(read: CommandRecord[], live: Iterable<CommandRecord>, nodeId: string): CommandRecord[] {
  const byId = new Map(read.map((r) => [r.id, r]));
  for (const r of live) if (r.node_id === nodeId) byId.set(r.id, r);
  return [...byId.values()].sort((a, b) => b.started_ms - a.started_ms).slice(0, SHOWN);
}

export function CommandsTab({ node }: { node: NodeView }) {
  const c = useCommands();
  const fleet = useFleet();
  const role = useContext(RoleContext);
  const [read, setRead] = useState<CommandRecord[] | null>(null);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  const [now, setNow] = useState(Date.now());

  // Read on opening, on "try again" and after a snapshot (the stream may
  // have missed changes while it was away); the stream brings the rest.
  useEffect(() => {
    let live = true;
    api.nodeCommands(node.id, SHOWN).then(
      (l) => {
        if (!live) return;
        setRead(l);
        setError('');
      },
      (err) => live && setError((err as Error).message),
    );
    return () => {
      live = false;
    };
  }, [node.id, gen, fleet.snapshots]);

  const list = read && merged(read, fleet.liveCommands.values(), node.id);
  const running = list?.some((r) => r.status === 'running') ?? false;
  // The running ones' durations tick.
  useEffect(() => {
    if (!running) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [running]);

  if (error && !list) return <ErrorBox message={error} retry={() => setGen((g) => g + 1)} />;
  if (!list) return <p class="muted">Loading…</p>;
  if (list.length === 0)
    return (
      <Empty title="No commands on this host yet" testId="commands-empty">
        {can(role, 'command.restart') ? 'Restart a container, follow its logs or run an action: it is listed here.' : 'Commands that operators run on this host are listed here.'}
      </Empty>
    );
  const open = c.session?.record?.id;
  return (
    <div class="panel flush" data-testid="section-commands">
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <div class="table-scroll">
        <table class="simple cards commands">
          <thead>
            <tr>
              <th>Command</th>
              <th>By</th>
              <th>Status</th>
              <th>Exit</th>
              <th>Started</th>
              <th>Took</th>
            </tr>
          </thead>
          <tbody>
            {list.map((r) => (
              <tr key={r.id} class={open === r.id ? 'is-open' : undefined} data-testid="command-row" data-id={r.id} data-status={r.status} data-summary={r.summary}>
                <td>
                  {atLeast(role, r.role_needed) ? (
                    <button type="button" class="linkish" onClick={() => watchCommand(node, r)} aria-label={`Open ${r.summary}`} data-testid="command-open">
                      {r.summary}
                    </button>
                  ) : (
                    <span title={`Its output needs the ${r.role_needed} role`}>{r.summary}</span>
                  )}
                  {r.error && <small class="sub">{r.error}</small>}
                </td>
                <td data-label="by">
                  {r.actor}
                  {r.actor_kind && r.actor_kind !== 'user' ? <span class="muted small"> ({r.actor_kind})</span> : null}
                </td>
                <td>
                  <Badge text={r.status.replace('_', ' ')} tone={TONE[r.status]} />
                </td>
                <td class="num" data-label="exit">
                  {r.exit_code ?? '—'}
                </td>
                <td class="nowrap">{clock(r.started_ms)}</td>
                <td class="num">{durationMs(r.duration_ms ?? (r.status === 'running' ? now - r.started_ms : null))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
