// Hosts over SSH (admins): the hub's public key to copy into a host's
// authorized_keys, an "Add host over SSH" form (a fingerprint typed ahead,
// or the one the hub saw confirmed; agentless hosts' interval; then follow the
// install's steps), and every host added so, with a link to its node and the
// security state of one whose host key changed, a check of its connection and
// its removal (confirmed). The list is read again every few seconds while the
// page is visible (every second while an install runs).

import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, call } from '../api';
import { Badge, Empty, ErrorBox } from '../components/bits';
import { Confirm } from '../components/Confirm';
import { hostUrl, Link } from '../router';

interface Identity {
  public_key: string;
  fingerprint: string;
}
interface Step {
  name: string;
  state: 'running' | 'done' | 'failed';
  detail: string;
}
interface SshHost {
  id: string;
  target: string;
  fingerprint: string;
  agentless: boolean;
  interval_secs?: number | null;
  node_id?: string | null;
  security?: { state: string; pinned: string; seen: string; since_ms: number } | null;
  install?: { state: 'running' | 'done' | 'failed'; steps: Step[]; error?: string | null; undo?: string | null } | null;
}

interface Checked {
  ok: boolean;
  duration_ms: number;
}
/** A connection check: under way, or what it found. */
interface CheckResult {
  busy: boolean;
  ok: boolean;
  text: string;
}

const TONE = { running: 'info', done: 'ok', failed: 'bad' } as const;
/** How often the list is read again while the page is visible. */
const REFRESH_MS = 5000;

/** The fingerprint an "unknown host key SHA256:… — confirm" refusal names. */
export function fingerprintIn(message: string): string | null {
  const m = /unknown host key (SHA256:[A-Za-z0-9+/=]+)/.exec(message);
  return m ? m[1] : null;
}

export function SshHosts() {
  const [identity, setIdentity] = useState<Identity | null>(null);
  const [hosts, setHosts] = useState<SshHost[] | null>(null);
  const [error, setError] = useState('');
  const [target, setTarget] = useState('');
  const [typed, setTyped] = useState('');
  const [agentless, setAgentless] = useState(false);
  const [every, setEvery] = useState('');
  const [confirm, setConfirm] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [formError, setFormError] = useState('');
  const [notice, setNotice] = useState('');
  const [copied, setCopied] = useState('');
  const [checks, setChecks] = useState<Record<string, CheckResult>>({});
  const [removing, setRemoving] = useState<SshHost | null>(null);
  const [removed, setRemoved] = useState('');
  const confirmRef = useRef<HTMLDivElement>(null);
  const removedRef = useRef<HTMLParagraphElement>(null);
  // Reads of the list are numbered: one answering after a later one, or
  // started before a removal, is dropped (it must not bring a host back).
  const reads = useRef(0);
  const shown = useRef(0);
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );

  /** Reads the list again; `shout`: a failure is shown (otherwise the last list stays). */
  const loadHosts = (shout = false) => {
    const n = ++reads.current;
    return call<SshHost[]>('GET', '/api/v1/ssh/hosts').then(
      (list) => {
        if (!mounted.current || n <= shown.current) return;
        shown.current = n;
        setHosts(list);
      },
      (e) => {
        if (shout && mounted.current) setError(String(e.message));
      },
    );
  };
  const load = () => {
    setError('');
    call<Identity>('GET', '/api/v1/ssh/identity').then(
      (id) => mounted.current && setIdentity(id),
      (e) => mounted.current && setError(String(e.message)),
    );
    loadHosts(true);
  };
  useEffect(load, []);
  // Read again every few seconds while the page is visible (installs, agentless
  // readings, a changed host key); every second while an install runs. Only the
  // list changes: the form's input and the focus stay as they are.
  const running = (hosts || []).some((h) => h.install?.state === 'running');
  useEffect(() => {
    const visible = () => document.visibilityState === 'visible';
    const t = setInterval(() => visible() && loadHosts(), running ? 1000 : REFRESH_MS);
    const onVisible = () => visible() && loadHosts();
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      clearInterval(t);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [running]);
  // The confirmation takes the focus, so a keyboard or screen reader user lands on it.
  useEffect(() => {
    if (confirm) confirmRef.current?.focus();
  }, [confirm]);

  const add = async (fingerprint?: string) => {
    setBusy(true);
    setFormError('');
    setNotice('');
    const secs = agentless && every.trim() ? Number(every) : undefined;
    try {
      const host = await call<SshHost>('POST', '/api/v1/ssh/hosts', {
        target: target.trim(),
        agentless,
        ...(fingerprint ? { fingerprint } : {}),
        ...(secs !== undefined ? { interval_secs: secs } : {}),
      });
      setConfirm(null);
      setTarget('');
      setTyped('');
      setNotice(`Added ${host.target}: host key ${host.fingerprint} pinned.`);
      load();
    } catch (e) {
      const message = e instanceof ApiError ? e.message : String(e);
      const fp = e instanceof ApiError && e.status === 409 ? fingerprintIn(message) : null;
      if (fp) setConfirm(fp);
      else {
        setConfirm(null);
        setFormError(message);
      }
    } finally {
      setBusy(false);
    }
  };

  const check = async (h: SshHost) => {
    const set = (r: CheckResult) => mounted.current && setChecks((c) => ({ ...c, [h.id]: r }));
    set({ busy: true, ok: true, text: `Checking the connection to ${h.target}…` });
    try {
      const r = await call<Checked>('POST', `/api/v1/ssh/hosts/${encodeURIComponent(h.id)}/check`);
      set(
        r.ok
          ? { busy: false, ok: true, text: `Connection OK: the host key matches the pinned one, the hub's key is accepted and a command ran (${r.duration_ms} ms).` }
          : { busy: false, ok: false, text: `Connected, but the test command failed (${r.duration_ms} ms).` },
      );
    } catch (e) {
      set({ busy: false, ok: false, text: `Check failed: ${e instanceof ApiError ? e.message : String(e)}` });
    }
    // A changed host key is now the host's security state.
    loadHosts();
  };

  const remove = async (h: SshHost) => {
    await call<void>('DELETE', `/api/v1/ssh/hosts/${encodeURIComponent(h.id)}`);
    if (!mounted.current) return;
    shown.current = reads.current; // a read under way may still list it
    setHosts((list) => (list || []).filter((x) => x.id !== h.id));
    setChecks(({ [h.id]: _, ...rest }) => rest);
    setRemoving(null);
    setRemoved(`Removed ${h.target}: its pinned host key and connection are forgotten.`);
    loadHosts();
  };
  // The removed host's buttons are gone: the focus goes to the notice saying so.
  useEffect(() => {
    if (removed) removedRef.current?.focus();
  }, [removed]);

  const copy = async (e: Event) => {
    if (!identity) return;
    const input = (e.currentTarget as HTMLElement).parentElement?.querySelector('input');
    try {
      await navigator.clipboard.writeText(identity.public_key);
      setCopied('Copied.');
    } catch {
      // No clipboard permission: select it for a manual copy.
      input?.select();
      setCopied(document.execCommand?.('copy') ? 'Copied.' : 'Selected: press Ctrl+C to copy.');
    }
  };

  return (
    <section class="screen" aria-labelledby="ssh-title">
      <div class="screen-head">
        <h1 id="ssh-title">Hosts over SSH</h1>
      </div>
      {error && <ErrorBox message={error} retry={load} />}
      <section class="panel" aria-labelledby="ssh-key-title" data-testid="ssh-identity">
        <h2 id="ssh-key-title">The hub's SSH key</h2>
        <p class="hint">Put this line in the login's ~/.ssh/authorized_keys on each host to add.</p>
        {identity ? (
          <>
            <div class="secret-row">
              <input readOnly value={identity.public_key} aria-label="The hub's SSH public key" class="mono" onFocus={(e) => e.currentTarget.select()} data-testid="ssh-public-key" />
              <button type="button" class="btn btn-primary" onClick={copy} data-testid="ssh-copy-key">
                Copy public key
              </button>
            </div>
            <p class="hint">
              Its fingerprint: <span class="mono" data-testid="ssh-key-fingerprint">{identity.fingerprint}</span>{' '}
              <span role="status" data-testid="ssh-copied">
                {copied}
              </span>
            </p>
          </>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </section>
      <section class="panel" aria-labelledby="ssh-add-title">
        <h2 id="ssh-add-title">Add host over SSH</h2>
        <form
          class="form form-row"
          data-testid="ssh-add-form"
          onSubmit={(e) => {
            e.preventDefault();
            add(typed.trim() || undefined);
          }}
        >
          <label class="field">
            <span>Target</span>
            <input
              required
              autoComplete="off"
              spellcheck={false}
              placeholder="ssh://user@host:22"
              value={target}
              onInput={(e) => {
                setTarget(e.currentTarget.value);
                setConfirm(null);
              }}
              data-testid="ssh-target"
            />
          </label>
          <label class="field">
            <span>Host key fingerprint (optional)</span>
            <input
              autoComplete="off"
              spellcheck={false}
              placeholder="SHA256:…"
              value={typed}
              onInput={(e) => setTyped(e.currentTarget.value)}
              aria-describedby="ssh-fingerprint-hint"
              data-testid="ssh-fingerprint"
            />
          </label>
          <label>
            <input type="checkbox" checked={agentless} onChange={(e) => setAgentless(e.currentTarget.checked)} data-testid="ssh-agentless" /> Agentless (watch over SSH, install nothing)
          </label>
          {agentless && (
            <label class="field">
              <span>Read every (seconds)</span>
              <input type="number" min={2} max={86400} placeholder="30" value={every} onInput={(e) => setEvery(e.currentTarget.value)} data-testid="ssh-interval" />
            </label>
          )}
          <button type="submit" class="btn btn-primary" disabled={busy || !target.trim()} data-testid="ssh-add">
            {busy ? 'Connecting…' : 'Add'}
          </button>
        </form>
        <p class="hint" id="ssh-fingerprint-hint">
          Known beforehand (<code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code> on the host)? Type it; otherwise the hub shows the one the host presents, for you to confirm.
        </p>
        {confirm && (
          <div class="form-notice" role="alertdialog" aria-label="Confirm the host key" tabIndex={-1} ref={confirmRef} data-testid="ssh-confirm">
            <p>
              The host presented the key <strong class="mono" data-testid="ssh-confirm-fingerprint">{confirm}</strong>. Compare it with <code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code> on the host; it is pinned from now on.
            </p>
            <button type="button" class="btn btn-primary" disabled={busy} onClick={() => add(confirm)} data-testid="ssh-confirm-add">
              It is the host's key: add
            </button>{' '}
            <button type="button" class="btn" onClick={() => setConfirm(null)} data-testid="ssh-confirm-cancel">
              Cancel
            </button>
          </div>
        )}
        {formError && (
          <p class="form-error" role="alert" data-testid="ssh-add-error">
            {formError}
          </p>
        )}
        {notice && (
          <p class="form-ok" role="status" data-testid="ssh-notice">
            {notice}
          </p>
        )}
      </section>
      {removed && (
        <p class="form-ok" role="status" tabIndex={-1} ref={removedRef} data-testid="ssh-removed">
          {removed}
        </p>
      )}
      {hosts && hosts.length === 0 ? (
        <Empty title="No hosts added over SSH yet" />
      ) : (
        (hosts || []).map((h) => <HostCard key={h.id} h={h} checked={checks[h.id]} onCheck={() => check(h)} onRemove={() => setRemoving(h)} />)
      )}
      {removing && (
        <Confirm title={`Remove ${removing.target}?`} confirmLabel="Remove host" onCancel={() => setRemoving(null)} onConfirm={() => remove(removing)}>
          The hub forgets its pinned host key{removing.agentless ? ', stops reading it over SSH' : ''} and closes its connection.{removing.agentless ? '' : ' An agent installed on it stays enrolled.'} To trust a new host key, add the host again.
        </Confirm>
      )}
    </section>
  );
}

/** One host added over SSH: its security state, node, install, a connection check (announced) and Remove. */
function HostCard({ h, checked: c, onCheck, onRemove }: { h: SshHost; checked?: CheckResult; onCheck: () => void; onRemove: () => void }) {
  const title = `${h.id}-title`;
  return (
    <section class="panel" aria-labelledby={title} data-testid="ssh-host" data-target={h.target} data-agentless={String(h.agentless)} data-security={h.security?.state ?? ''}>
      <div class="panel-head">
        <h2 class="mono" id={title}>
          {h.target} {h.agentless && <Badge text={h.interval_secs ? `agentless · every ${h.interval_secs} s` : 'agentless'} tone="muted" />}{' '}
          {h.install && <Badge text={h.install.state} tone={TONE[h.install.state]} />}
        </h2>
        <span class="spacer" />
        <div class="btn-row">
          {/* Not disabled while it checks: a disabled button would drop the keyboard focus. */}
          <button type="button" class="btn btn-small" aria-disabled={c?.busy ? 'true' : undefined} aria-describedby={title} onClick={() => c?.busy || onCheck()} data-testid="ssh-check">
            {c?.busy ? 'Checking…' : 'Check connection'}
          </button>
          <button type="button" class="btn btn-small btn-danger-outline" aria-describedby={title} onClick={onRemove} data-testid="ssh-remove">
            Remove
          </button>
        </div>
      </div>
      {h.security && (
        <p class="form-error" role="alert" data-testid="ssh-security">
          Host key changed: pinned {h.security.pinned}, the host now shows {h.security.seen}. Connections are refused; if the change is expected, remove the host and add it again.
        </p>
      )}
      <p class="muted small">
        {h.id} · host key <span class="mono" data-testid="ssh-host-fingerprint">{h.fingerprint}</span>
        {h.node_id && (
          <>
            {' '}
            · node{' '}
            <Link href={hostUrl(h.node_id)} data-testid="ssh-host-node">
              {h.node_id}
            </Link>
          </>
        )}
      </p>
      {h.install && (
        <ol>
          {h.install.steps.map((s) => (
            <li key={s.name}>
              <Badge text={s.state} tone={TONE[s.state]} /> <strong>{s.name}</strong> {s.detail}
            </li>
          ))}
        </ol>
      )}
      {h.install?.error && (
        <p class="form-error">
          {h.install.error}
          {h.install.undo ? ` — undone: ${h.install.undo}` : ''}
        </p>
      )}
      {/* Always there, so what a check finds is announced. */}
      <div role="status" data-testid="ssh-check-result" data-state={c ? (c.busy ? 'checking' : c.ok ? 'ok' : 'failed') : ''}>
        {c && <p class={c.busy ? 'hint' : c.ok ? 'form-ok' : 'form-error'}>{c.text}</p>}
      </div>
    </section>
  );
}
