import { useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { duration } from '../format';
import { Logo } from '../Shell';
import type { Me } from '../types';

export function SignIn({ onSignedIn, bootError, notice }: { onSignedIn: (me: Me) => void; bootError?: string; notice?: string }) {
  const [error, setError] = useState(bootError ?? '');
  const [busy, setBusy] = useState(false);
  const password = useRef<HTMLInputElement>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const username = String(data.get('username') || '').trim();
    const pw = String(data.get('password') || '');
    if (!username || !pw) {
      setError('enter a username and a password');
      return;
    }
    setBusy(true);
    setError('');
    try {
      onSignedIn(await api.signIn(username, pw));
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        // Locked after repeated failures: the hub's message, and how long.
        setError(err.retryAfter ? `${err.message} (in about ${duration(err.retryAfter)})` : err.message);
      } else {
        setError(err instanceof ApiError && err.status === 401 ? 'invalid username or password' : (err as Error).message);
      }
      if (password.current) {
        password.current.value = '';
        password.current.focus();
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="signin-card" data-testid="signin-form" onSubmit={submit} noValidate>
        <div class="brand brand-lg">
          <Logo />
          <span>twinbay</span>
        </div>
        <h1>Sign in</h1>
        {notice && !error && (
          <p class="form-notice" role="status" data-testid="signin-notice">
            {notice}
          </p>
        )}
        <label class="field">
          <span>Username</span>
          <input name="username" autoComplete="username" autoCapitalize="none" spellcheck={false} required autoFocus data-testid="signin-username" />
        </label>
        <label class="field">
          <span>Password</span>
          <input ref={password} name="password" type="password" autoComplete="current-password" required data-testid="signin-password" />
        </label>
        {error && (
          <p class="form-error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <button class="btn btn-primary" type="submit" disabled={busy} data-testid="signin-submit">
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="hint">The first start of the hub printed the <code>admin</code> password.</p>
      </form>
    </main>
  );
}
