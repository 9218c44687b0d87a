// Hosts over SSH (admins): the hub's public key to copy into a host's
// authorized_keys, an "Add host over SSH" form (confirm the host key's
// fingerprint the hub saw, then follow the install's steps), and every host
// added so, with the security state of one whose host key changed.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, call } from '../api';
import { Badge, Empty, ErrorBox } from '../components/bits';

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
  node_id?: string | null;
  security?: { state: string; pinned: string; seen: string; since_ms: number } | null;
  install?: { state: 'running' | 'done' | 'failed'; steps: Step[]; error?: string | null; undo?: string | null } | null;
}

const TONE = { running: 'info', done: 'ok', failed: 'bad' } as const;

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
  const [agentless, setAgentless] = useState(false);
  const [confirm, setConfirm] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [formError, setFormError] = useState('');
  const [copied, setCopied] = useState(false);

  const load = () => {
    call<Identity>('GET', '/api/v1/ssh/identity').then(setIdentity, (e) => setError(String(e.message)));
    call<SshHost[]>('GET', '/api/v1/ssh/hosts').then(setHosts, (e) => setError(String(e.message)));
  };
  useEffect(load, []);
  // Follow installs while any runs.
  const running = (hosts || []).some((h) => h.install?.state === 'running');
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => call<SshHost[]>('GET', '/api/v1/ssh/hosts').then(setHosts, () => {}), 1000);
    return () => clearInterval(t);
  }, [running]);

  const add = async (fingerprint?: string) => {
    setBusy(true);
    setFormError('');
    try {
      await call<SshHost>('POST', '/api/v1/ssh/hosts', { target: target.trim(), agentless, ...(fingerprint ? { fingerprint } : {}) });
      setConfirm(null);
      setTarget('');
      load();
    } catch (e) {
      const message = e instanceof ApiError ? e.message : String(e);
      const fp = e instanceof ApiError && e.status === 409 ? fingerprintIn(message) : null;
      if (fp) setConfirm(fp);
      else setFormError(message);
    } finally {
      setBusy(false);
    }
  };

  const copy = () => {
    if (!identity) return;
    navigator.clipboard?.writeText(identity.public_key).then(() => {
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    });
  };

  return (
    <section class="screen" aria-labelledby="ssh-title">
      <div class="screen-head">
        <h1 id="ssh-title">Hosts over SSH</h1>
      </div>
      {error && <ErrorBox message={error} retry={load} />}
      <div class="card" data-testid="ssh-identity">
        <h2>The hub's SSH key</h2>
        <p class="muted">Put this line in the login's ~/.ssh/authorized_keys on each host to add.</p>
        <pre class="mono wrap">{identity ? identity.public_key : 'loading…'}</pre>
        {identity && (
          <p>
            <button type="button" class="btn" onClick={copy} data-testid="ssh-copy-key">
              {copied ? 'Copied' : 'Copy public key'}
            </button>{' '}
            <span class="muted mono">{identity.fingerprint}</span>
          </p>
        )}
      </div>
      <form
        class="card"
        aria-label="Add host over SSH"
        onSubmit={(e) => {
          e.preventDefault();
          add();
        }}
      >
        <h2>Add host over SSH</h2>
        <label>
          Target{' '}
          <input required placeholder="ssh://user@host:22" value={target} onInput={(e) => setTarget(e.currentTarget.value)} data-testid="ssh-target" />
        </label>{' '}
        <label>
          <input type="checkbox" checked={agentless} onChange={(e) => setAgentless(e.currentTarget.checked)} /> Agentless (watch over SSH, install nothing)
        </label>{' '}
        <button type="submit" class="btn primary" disabled={busy || !target.trim()}>
          {busy ? 'Connecting…' : 'Add'}
        </button>
        {confirm && (
          <div class="confirm" role="alertdialog" aria-label="Confirm the host key" data-testid="ssh-confirm">
            <p>
              The host presented the key <strong class="mono">{confirm}</strong>. Compare it with <code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code> on the host; it is pinned from now on.
            </p>
            <button type="button" class="btn primary" disabled={busy} onClick={() => add(confirm)}>
              It is the host's key: add
            </button>{' '}
            <button type="button" class="btn" onClick={() => setConfirm(null)}>
              Cancel
            </button>
          </div>
        )}
        {formError && <p class="bad" role="alert">{formError}</p>}
      </form>
      {hosts && hosts.length === 0 ? (
        <Empty title="No hosts added over SSH yet" />
      ) : (
        (hosts || []).map((h) => (
          <div class="card" key={h.id} data-testid="ssh-host">
            <h2 class="mono">
              {h.target} {h.agentless && <Badge text="agentless" />} {h.install && <Badge text={h.install.state} tone={TONE[h.install.state]} />}
            </h2>
            {h.security && (
              <p class="bad" role="alert" data-testid="ssh-security">
                Host key changed: pinned {h.security.pinned}, the host now shows {h.security.seen}. Connections are refused; if the change is expected, remove the host and add it again.
              </p>
            )}
            <p class="muted">
              {h.id} · host key {h.fingerprint}
              {h.node_id ? ` · node ${h.node_id}` : ''}
            </p>
            {h.install && (
              <ol class="steps">
                {h.install.steps.map((s) => (
                  <li key={s.name}>
                    <Badge text={s.state} tone={TONE[s.state]} /> <strong>{s.name}</strong> {s.detail}
                  </li>
                ))}
              </ol>
            )}
            {h.install?.error && (
              <p class="bad">
                {h.install.error}
                {h.install.undo ? ` — undone: ${h.install.undo}` : ''}
              </p>
            )}
          </div>
        ))
      )}
    </section>
  );
}
