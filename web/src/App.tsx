// Boot (who am I?), sign-in, and the signed-in shell with its screens.

import { useEffect, useState } from 'preact/hooks';
import { api, ApiError } from './api';
import { closeConsole } from './commands';
import { Shell } from './Shell';
import { resetPrefill } from './prefill';
import { navigate, useRoute } from './router';
import { SignIn } from './screens/SignIn';
import { fleet } from './store';
import { startStream, stopStream } from './stream';
import type { Me } from './types';

type Session = { state: 'checking' } | { state: 'out'; error?: string; notice?: string } | { state: 'in'; me: Me };

export function App() {
  const route = useRoute();
  const [session, setSession] = useState<Session>({ state: 'checking' });

  const signedOut = (notice?: string) => {
    stopStream();
    closeConsole();
    fleet.clear();
    resetPrefill();
    setSession({ state: 'out', notice });
  };

  useEffect(() => {
    api.whoami().then(
      (me) => setSession({ state: 'in', me }),
      (err) =>
        setSession(
          err instanceof ApiError && err.status === 401 ? { state: 'out' } : { state: 'out', error: `The hub cannot be reached: ${err.message}` },
        ),
    );
  }, []);

  useEffect(() => {
    if (session.state !== 'in') return;
    startStream((why) => {
      // Ended elsewhere: sign-in says why, and brings the user back here.
      const here = location.pathname + location.search;
      navigate(here === '/' ? '/signin' : `/signin?next=${encodeURIComponent(here)}`, { replace: true });
      signedOut(why);
    });
    return stopStream;
  }, [session.state]);

  // Keep the URL honest: /signin only while signed out, with the way back.
  useEffect(() => {
    if (session.state === 'out' && route.path !== '/signin') {
      const here = location.pathname + location.search;
      navigate(here === '/' ? '/signin' : `/signin?next=${encodeURIComponent(here)}`, { replace: true });
    } else if (session.state === 'in' && route.path === '/signin') {
      const next = route.query.get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
    }
  }, [session.state, route.path]);

  if (session.state === 'checking') return <p class="boot">Loading…</p>;
  if (session.state === 'out')
    return <SignIn bootError={session.error} notice={session.notice} onSignedIn={(me) => setSession({ state: 'in', me })} />;
  return (
    <Shell
      me={session.me}
      route={route}
      onSignOut={async () => {
        try {
          await api.signOut();
        } catch {
          /* the session is gone either way */
        }
        navigate('/signin');
        signedOut();
      }}
      onEnded={() => {
        navigate('/signin');
        signedOut();
      }}
    />
  );
}
