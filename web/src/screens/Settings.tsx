// Settings: the user's own account (everyone), people and API tokens (admins).

import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { can, isRole, ROLE_HELP, ROLES, type Action } from '../access';
import { api } from '../api';
import { Badge, Empty, ErrorBox } from '../components/bits';
import { Confirm } from '../components/Confirm';
import { ago, dateTime, until } from '../format';
import { Link, screenHref } from '../router';
import type { ApiTokenInfo, Me, UserInfo } from '../types';
import { useLoad } from '../useLoad';

export const MIN_PASSWORD = 12;
const USERNAME = /^[a-zA-Z0-9._@-]{1,64}$/;

export type SettingsTab = 'account' | 'users' | 'tokens';

const TABS: { id: SettingsTab; label: string; needs: Action }[] = [
  { id: 'account', label: 'Account', needs: 'account.manage' },
  { id: 'users', label: 'Users', needs: 'users.manage' },
  { id: 'tokens', label: 'API tokens', needs: 'tokens.manage' },
];

const chars = (s: string) => [...s].length;

export function Settings({ me, tab, onEnded }: { me: Me; tab: string; onEnded: () => void }) {
  const tabs = TABS.filter((t) => can(me.role, t.needs));
  const known = TABS.find((t) => t.id === tab);
  const allowed = tabs.find((t) => t.id === tab);
  return (
    <section class="screen" aria-labelledby="settings-title">
      <div class="screen-head">
        <h1 id="settings-title">Settings</h1>
      </div>
      <div class="tabs" role="tablist" aria-label="Settings">
        {tabs.map((t) => (
          <Link key={t.id} href={screenHref(`/settings/${t.id}`)} role="tab" aria-selected={t.id === tab} class={`tab${t.id === tab ? ' on' : ''}`} data-testid={`settings-tab-${t.id}`}>
            {t.label}
          </Link>
        ))}
      </div>
      <div class="tabpanel settings-panel" role="tabpanel">
        {!known ? (
          <Empty title="No such settings page" testId="not-found">
            <Link href={screenHref('/settings/account')}>Your account</Link>
          </Empty>
        ) : !allowed ? (
          <Empty title={`${known.label}: for admins only`} testId="forbidden">
            Your role ({me.role}) cannot manage this. <Link href={screenHref('/settings/account')}>Your account</Link>
          </Empty>
        ) : tab === 'account' ? (
          <Account me={me} onEnded={onEnded} />
        ) : tab === 'users' ? (
          <Users me={me} />
        ) : (
          <Tokens />
        )}
      </div>
    </section>
  );
}

function FormError({ message, testId }: { message: string; testId: string }) {
  if (!message) return null;
  return (
    <p class="form-error" role="alert" data-testid={testId}>
      {message}
    </p>
  );
}

function Notice({ message, testId }: { message: string; testId: string }) {
  if (!message) return null;
  return (
    <p class="form-ok" role="status" data-testid={testId}>
      {message}
    </p>
  );
}

function RoleSelect({ value, onChange, label, testId, name }: { value: string; onChange?: (v: string) => void; label?: string; testId: string; name?: string }) {
  return (
    <select name={name} value={value} aria-label={label} onChange={onChange && ((e) => onChange(e.currentTarget.value))} data-testid={testId}>
      {ROLES.map((r) => (
        <option key={r} value={r} title={ROLE_HELP[r]}>
          {r}
        </option>
      ))}
    </select>
  );
}

// ---- Account ----------------------------------------------------------------

function Account({ me, onEnded }: { me: Me; onEnded: () => void }) {
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const current = String(data.get('current') || '');
    const next = String(data.get('new') || '');
    const again = String(data.get('confirm') || '');
    setDone('');
    if (!current) return setError('enter your current password');
    if (chars(next) < MIN_PASSWORD) return setError(`the new password needs at least ${MIN_PASSWORD} characters`);
    if (next !== again) return setError('the new password and its confirmation differ');
    setBusy(true);
    setError('');
    try {
      await api.changePassword(current, next);
      form.reset();
      setDone('Password changed. Your other sessions were signed out; this one stays.');
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="settings-grid">
      <section class="panel" aria-labelledby="pw-title">
        <h2 id="pw-title">Change your password</h2>
        <p class="muted small">
          Signed in as <strong>{me.username}</strong> <Badge text={me.role} tone="muted" />
        </p>
        <form class="form" onSubmit={submit} noValidate data-testid="password-form">
          <input type="text" name="username" autoComplete="username" value={me.username} hidden readOnly />
          <label class="field">
            <span>Current password</span>
            <input name="current" type="password" autoComplete="current-password" required data-testid="pw-current" />
          </label>
          <label class="field">
            <span>New password</span>
            <input name="new" type="password" autoComplete="new-password" required minLength={MIN_PASSWORD} aria-describedby="pw-hint" data-testid="pw-new" />
          </label>
          <label class="field">
            <span>New password again</span>
            <input name="confirm" type="password" autoComplete="new-password" required data-testid="pw-confirm" />
          </label>
          <p id="pw-hint" class="hint">
            At least {MIN_PASSWORD} characters. Your other sessions end when it changes.
          </p>
          <FormError message={error} testId="pw-error" />
          <Notice message={done} testId="pw-done" />
          <div>
            <button class="btn btn-primary" type="submit" disabled={busy} data-testid="pw-submit">
              {busy ? 'Changing…' : 'Change password'}
            </button>
          </div>
        </form>
      </section>
      <section class="panel" aria-labelledby="sessions-title">
        <h2 id="sessions-title">Sessions</h2>
        <p class="muted">Lost a laptop, or signed in on a shared machine? End every session of yours, this one included.</p>
        <button type="button" class="btn btn-danger-outline" onClick={() => setConfirming(true)} data-testid="signout-everywhere">
          Sign out everywhere
        </button>
      </section>
      {confirming && (
        <Confirm
          title="Sign out everywhere?"
          confirmLabel="Sign out everywhere"
          onCancel={() => setConfirming(false)}
          onConfirm={async () => {
            await api.signOutEverywhere();
            onEnded();
          }}
        >
          Every session of <strong>{me.username}</strong> ends, this one too; you will sign in again.
        </Confirm>
      )}
    </div>
  );
}

// ---- Host groups ------------------------------------------------------------

const SELECTOR = /^[A-Za-z0-9._/-]{1,63}=[A-Za-z0-9._/-]{1,63}$/;

/** `site=lab, group=web` → selectors, or an error message. Empty: every host. */
function parseGroups(text: string): string[] | string {
  const groups = text
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  const bad = groups.find((g) => !SELECTOR.test(g));
  return bad ? `host groups: "${bad}" is not a label like site=lab` : groups;
}

function GroupsField({ testId, label = 'Hosts', value }: { testId: string; label?: string; value?: string[] | null }) {
  return (
    <label class="field">
      <span>{label}</span>
      <input
        name="groups"
        autoComplete="off"
        spellcheck={false}
        placeholder="all, or site=lab, group=web"
        defaultValue={value?.join(', ') ?? ''}
        data-testid={testId}
      />
    </label>
  );
}

function GroupsNote({ groups }: { groups?: string[] | null }) {
  return groups?.length ? (
    <div class="muted" data-testid="groups">
      only {groups.join(', ')}
    </div>
  ) : null;
}

// ---- Users ------------------------------------------------------------------

function NewUser({ onCreated }: { onCreated: (name: string) => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [role, setRole] = useState('viewer');

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const username = String(data.get('username') || '').trim();
    const password = String(data.get('password') || '');
    const groups = parseGroups(String(data.get('groups') || ''));
    if (!USERNAME.test(username)) return setError('username: 1 to 64 of a-z, A-Z, 0-9, . _ - @');
    if (chars(password) < MIN_PASSWORD) return setError(`password: at least ${MIN_PASSWORD} characters`);
    if (typeof groups === 'string') return setError(groups);
    setBusy(true);
    setError('');
    try {
      await api.createUser(username, password, role, groups);
      form.reset();
      setRole('viewer');
      onCreated(username);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="new-user-title">
      <h2 id="new-user-title">Add a user</h2>
      <form class="form form-row" onSubmit={submit} noValidate data-testid="new-user-form">
        <label class="field">
          <span>Username</span>
          <input name="username" autoComplete="off" autoCapitalize="none" spellcheck={false} required maxLength={64} data-testid="new-user-name" />
        </label>
        <label class="field">
          <span>Password</span>
          <input name="password" type="password" autoComplete="new-password" required minLength={MIN_PASSWORD} placeholder={`${MIN_PASSWORD}+ characters`} data-testid="new-user-password" />
        </label>
        <label class="field">
          <span>Role</span>
          <RoleSelect value={role} onChange={setRole} testId="new-user-role" name="role" />
        </label>
        <GroupsField testId="new-user-groups" />
        <button class="btn btn-primary" type="submit" disabled={busy} data-testid="new-user-submit">
          {busy ? 'Adding…' : 'Add user'}
        </button>
      </form>
      {isRole(role) && <p class="hint">{ROLE_HELP[role]}.</p>}
      <FormError message={error} testId="new-user-error" />
    </section>
  );
}

function ResetPassword({ user, onDone, onCancel }: { user: UserInfo; onDone: () => void; onCancel: () => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const pw = String(new FormData(e.currentTarget as HTMLFormElement).get('password') || '');
    if (chars(pw) < MIN_PASSWORD) return setError(`password: at least ${MIN_PASSWORD} characters`);
    setBusy(true);
    setError('');
    try {
      await api.updateUser(user.id, { password: pw });
      onDone();
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };
  return (
    <form class="form form-row inline-form" onSubmit={submit} noValidate data-testid="reset-form">
      <label class="field">
        <span>New password for {user.username}</span>
        <input name="password" type="password" autoComplete="new-password" required minLength={MIN_PASSWORD} autoFocus data-testid="reset-password" />
      </label>
      <button class="btn btn-primary" type="submit" disabled={busy} data-testid="reset-submit">
        Set password
      </button>
      <button class="btn" type="button" onClick={onCancel}>
        Cancel
      </button>
      <span class="hint">Their sessions end.</span>
      <FormError message={error} testId="reset-error" />
    </form>
  );
}

/** Changes which hosts a user sees (empty: every host). */
function EditGroups({ user, onDone, onCancel }: { user: UserInfo; onDone: (groups: string[]) => void; onCancel: () => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const groups = parseGroups(String(new FormData(e.currentTarget as HTMLFormElement).get('groups') || ''));
    if (typeof groups === 'string') return setError(groups);
    setBusy(true);
    setError('');
    try {
      await api.updateUser(user.id, { groups });
      onDone(groups);
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };
  return (
    <form class="form form-row inline-form" onSubmit={submit} noValidate data-testid="groups-form">
      <GroupsField testId="groups-input" label={`Hosts ${user.username} sees`} value={user.groups} />
      <button class="btn btn-primary" type="submit" disabled={busy} data-testid="groups-submit">
        Save
      </button>
      <button class="btn" type="button" onClick={onCancel}>
        Cancel
      </button>
      <span class="hint">Empty: every host. Their open screens reload.</span>
      <FormError message={error} testId="groups-error" />
    </form>
  );
}

function Users({ me }: { me: Me }) {
  const users = useLoad(() => api.users());
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [resetting, setResetting] = useState<number | null>(null);
  const [grouping, setGrouping] = useState<number | null>(null);
  const [removing, setRemoving] = useState<UserInfo | null>(null);

  const setRole = async (u: UserInfo, role: string) => {
    setError('');
    setNotice('');
    try {
      await api.updateUser(u.id, { role });
      // One's own role changed: start again with what the new role may do.
      if (u.username === me.username) return location.reload();
      setNotice(`${u.username} is now ${role === 'admin' ? 'an' : 'a'} ${role}.`);
    } catch (err) {
      setError(`${u.username}: ${(err as Error).message}`);
    }
    users.reload();
  };

  const list = users.data ?? [];
  return (
    <>
      <NewUser
        onCreated={(name) => {
          setError('');
          setNotice(`Added ${name}.`);
          users.reload();
        }}
      />
      <section class="panel" aria-labelledby="users-title">
        <div class="panel-head">
          <h2 id="users-title">Users</h2>
          <span class="muted" data-testid="users-count">
            {users.data ? `${list.length} user${list.length === 1 ? '' : 's'}` : ''}
          </span>
        </div>
        <FormError message={error} testId="users-error" />
        <Notice message={notice} testId="users-notice" />
        {users.error && !users.data ? (
          <ErrorBox message={users.error} retry={users.reload} />
        ) : !users.data ? (
          <p class="muted">Loading…</p>
        ) : list.length === 0 ? (
          <Empty title="No users">Add one above.</Empty>
        ) : (
          <div class="table-scroll">
            <table class="simple people cards" data-testid="users-table">
              <thead>
                <tr>
                  <th scope="col">Username</th>
                  <th scope="col">Role</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.map((u) => (
                  <Fragment key={u.id}>
                    <tr data-testid="user-row" data-username={u.username} data-role={u.role}>
                      <td>
                        <strong>{u.username}</strong> {u.username === me.username && <span class="badge muted">you</span>}
                        <GroupsNote groups={u.groups} />
                      </td>
                      <td>
                        <RoleSelect value={u.role} label={`Role of ${u.username}`} onChange={(r) => setRole(u, r)} testId="user-role" />
                      </td>
                      <td class="muted num" data-label="created">{dateTime(u.created_at)}</td>
                      <td class="actions">
                        <button
                          type="button"
                          class="btn btn-small"
                          onClick={() => {
                            setResetting(null);
                            setGrouping(grouping === u.id ? null : u.id);
                          }}
                          aria-expanded={grouping === u.id}
                          data-testid="user-groups"
                        >
                          Hosts…
                        </button>
                        <button
                          type="button"
                          class="btn btn-small"
                          onClick={() => {
                            setGrouping(null);
                            setResetting(resetting === u.id ? null : u.id);
                          }}
                          aria-expanded={resetting === u.id}
                          data-testid="user-reset"
                        >
                          Reset password
                        </button>
                        <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setRemoving(u)} data-testid="user-remove">
                          Remove
                        </button>
                      </td>
                    </tr>
                    {grouping === u.id && (
                      <tr class="subrow">
                        <td colSpan={4}>
                          <EditGroups
                            user={u}
                            onCancel={() => setGrouping(null)}
                            onDone={(groups) => {
                              setGrouping(null);
                              setError('');
                              setNotice(groups.length ? `${u.username} now sees only ${groups.join(', ')}.` : `${u.username} now sees every host.`);
                              users.reload();
                            }}
                          />
                        </td>
                      </tr>
                    )}
                    {resetting === u.id && (
                      <tr class="subrow">
                        <td colSpan={4}>
                          <ResetPassword
                            user={u}
                            onCancel={() => setResetting(null)}
                            onDone={() => {
                              setResetting(null);
                              setError('');
                              setNotice(`New password set for ${u.username}; their sessions ended.`);
                            }}
                          />
                        </td>
                      </tr>
                    )}
                  </Fragment>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {removing && (
        <Confirm
          title={`Remove ${removing.username}?`}
          confirmLabel="Remove user"
          onCancel={() => setRemoving(null)}
          onConfirm={async () => {
            await api.removeUser(removing.id);
            // Removed oneself: the session is gone with the account.
            if (removing.username === me.username) return location.reload();
            setNotice(`Removed ${removing.username}.`);
            setError('');
            setRemoving(null);
            users.reload();
          }}
        >
          {removing.username === me.username ? 'This is you: you will be signed out. ' : ''}Their account and every session of theirs end at once. The audit trail keeps what they did.
        </Confirm>
      )}
    </>
  );
}

// ---- API tokens -------------------------------------------------------------

const EXPIRY: { label: string; secs: number }[] = [
  { label: 'in 1 day', secs: 86_400 },
  { label: 'in 7 days', secs: 7 * 86_400 },
  { label: 'in 30 days', secs: 30 * 86_400 },
  { label: 'in 90 days', secs: 90 * 86_400 },
  { label: 'in 1 year', secs: 365 * 86_400 },
  { label: 'never', secs: 0 },
];

function tokenStatus(t: ApiTokenInfo, now = Date.now()): 'revoked' | 'expired' | 'active' {
  if (t.revoked_at != null) return 'revoked';
  if (t.expires_at != null && t.expires_at <= now) return 'expired';
  return 'active';
}

function Secret({ name, token, onDone }: { name: string; token: string; onDone: () => void }) {
  const [copied, setCopied] = useState('');
  const copy = async (e: Event) => {
    const input = (e.currentTarget as HTMLElement).parentElement?.querySelector('input');
    try {
      await navigator.clipboard.writeText(token);
      setCopied('Copied.');
    } catch {
      // No clipboard permission: select it for a manual copy.
      input?.select();
      setCopied(document.execCommand?.('copy') ? 'Copied.' : 'Selected: press Ctrl+C to copy.');
    }
  };
  return (
    <div class="secret" role="status" data-testid="token-secret">
      <strong>Token “{name || 'unnamed'}” created. Copy it now: you won't see it again.</strong>
      <div class="secret-row">
        <input readOnly value={token} aria-label="The new API token" class="mono" onFocus={(e) => e.currentTarget.select()} data-testid="token-secret-value" />
        <button type="button" class="btn btn-primary" onClick={copy} data-testid="token-copy">
          Copy
        </button>
      </div>
      <p class="hint">
        Use it as <code>Authorization: Bearer …</code>. The hub keeps only its hash. <span data-testid="token-copied">{copied}</span>
      </p>
      <div>
        <button type="button" class="btn" onClick={onDone} data-testid="token-secret-done">
          Done, I have copied it
        </button>
      </div>
    </div>
  );
}

function NewToken({ onCreated }: { onCreated: (name: string, token: string) => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [role, setRole] = useState('viewer');
  const [expiry, setExpiry] = useState(String(30 * 86_400));

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const name = String(data.get('name') || '').trim();
    const groups = parseGroups(String(data.get('groups') || ''));
    const readOnly = data.get('read_only') === 'on';
    if (!name) return setError('give the token a name to recognise it by');
    if (new TextEncoder().encode(name).length > 100) return setError('name: at most 100 bytes');
    if (typeof groups === 'string') return setError(groups);
    setBusy(true);
    setError('');
    try {
      const created = await api.createToken(name, role, Number(expiry) || undefined, groups, readOnly);
      form.reset();
      onCreated(name, created.token);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="new-token-title">
      <h2 id="new-token-title">Create an API token</h2>
      <form class="form form-row" onSubmit={submit} noValidate data-testid="new-token-form">
        <label class="field">
          <span>Name</span>
          <input name="name" autoComplete="off" maxLength={100} placeholder="grafana, backup script…" data-testid="new-token-name" />
        </label>
        <label class="field">
          <span>Role</span>
          <RoleSelect value={role} onChange={setRole} testId="new-token-role" />
        </label>
        <label class="field">
          <span>Expires</span>
          <select value={expiry} onChange={(e) => setExpiry(e.currentTarget.value)} data-testid="new-token-expiry">
            {EXPIRY.map((x) => (
              <option key={x.secs} value={String(x.secs)}>
                {x.label}
              </option>
            ))}
          </select>
        </label>
        <GroupsField testId="new-token-groups" />
        <label class="check" title="The API refuses its writes whatever its role; MCP lists no act tools to it">
          <input type="checkbox" name="read_only" aria-describedby="new-token-read-only-hint" data-testid="new-token-read-only" /> Read-only
        </label>
        <span id="new-token-read-only-hint" class="sr-only">
          The API refuses a read-only token's writes whatever its role, and MCP lists no act tools to it.
        </span>
        <button class="btn btn-primary" type="submit" disabled={busy} data-testid="new-token-submit">
          {busy ? 'Creating…' : 'Create token'}
        </button>
      </form>
      <FormError message={error} testId="new-token-error" />
    </section>
  );
}

function Tokens() {
  const tokens = useLoad(() => api.tokens());
  const [secret, setSecret] = useState<{ name: string; token: string } | null>(null);
  const [revoking, setRevoking] = useState<ApiTokenInfo | null>(null);
  const [notice, setNotice] = useState('');
  const now = Date.now();
  const list = tokens.data ?? [];

  return (
    <>
      {secret ? (
        <Secret name={secret.name} token={secret.token} onDone={() => setSecret(null)} />
      ) : (
        <NewToken
          onCreated={(name, token) => {
            setNotice('');
            setSecret({ name, token });
            tokens.reload();
          }}
        />
      )}
      <section class="panel" aria-labelledby="tokens-title">
        <div class="panel-head">
          <h2 id="tokens-title">API tokens</h2>
          <span class="muted" data-testid="tokens-count">
            {tokens.data ? `${list.filter((t) => tokenStatus(t, now) === 'active').length} active of ${list.length}` : ''}
          </span>
        </div>
        <Notice message={notice} testId="tokens-notice" />
        {tokens.error && !tokens.data ? (
          <ErrorBox message={tokens.error} retry={tokens.reload} />
        ) : !tokens.data ? (
          <p class="muted">Loading…</p>
        ) : list.length === 0 ? (
          <Empty title="No API tokens yet" testId="tokens-empty">
            Scripts and tools such as Prometheus or Grafana use a token instead of a password. Create one above, or with <code>twinbay ctl api-token create</code>.
          </Empty>
        ) : (
          <div class="table-scroll">
            <table class="simple people cards" data-testid="tokens-table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Created</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.map((t) => {
                  const status = tokenStatus(t, now);
                  return (
                    <tr key={t.id} data-testid="token-row" data-name={t.name} data-status={status} class={status === 'active' ? '' : 'is-down'}>
                      <td>
                        <strong>{t.name || <span class="muted">unnamed</span>}</strong> <span class="muted small">#{t.id}</span>
                        <GroupsNote groups={t.groups} />
                      </td>
                      <td>
                        {t.role}
                        {t.read_only && (
                          <span class="muted small" data-testid="token-read-only" title="The API refuses its writes; MCP lists no act tools to it">
                            {' '}
                            · read-only
                          </span>
                        )}
                      </td>
                      <td class="muted num" data-label="created">{dateTime(t.created_at)}</td>
                      <td class="muted num" data-label="expires" title={t.expires_at ? dateTime(t.expires_at) : undefined}>
                        {t.expires_at == null ? 'never' : status === 'expired' ? `expired ${dateTime(t.expires_at)}` : `${dateTime(t.expires_at)} (${until(t.expires_at, now)})`}
                      </td>
                      <td class="muted num" data-label="last used" title={t.last_used ? dateTime(t.last_used) : undefined}>
                        {t.last_used == null ? 'never' : ago(t.last_used, now)}
                      </td>
                      <td>
                        <Badge text={status === 'revoked' ? `revoked ${dateTime(t.revoked_at)}` : status} tone={status === 'active' ? 'ok' : status === 'revoked' ? 'bad' : 'warn'} />
                      </td>
                      <td class="actions">
                        {status === 'active' && (
                          <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setRevoking(t)} data-testid="token-revoke">
                            Revoke
                          </button>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {revoking && (
        <Confirm
          title={`Revoke “${revoking.name || `token #${revoking.id}`}”?`}
          confirmLabel="Revoke token"
          onCancel={() => setRevoking(null)}
          onConfirm={async () => {
            await api.revokeToken(revoking.id);
            setNotice(`Revoked “${revoking.name || `token #${revoking.id}`}”.`);
            setRevoking(null);
            tokens.reload();
          }}
        >
          Anything using it is refused from now on. This cannot be undone.
        </Confirm>
      )}
    </>
  );
}
