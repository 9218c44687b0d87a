// The signed-in frame: navigation, live-link status, theme, user; the screen.

import { useEffect, useState } from 'preact/hooks';
import { Empty } from './components/bits';
import { can, RoleContext, type Action } from './access';
import { CommandLayer } from './components/Console';
import { Link, navigate, screenHref, type Route } from './router';
import { Alerts, AlertsBadge } from './screens/Alerts';
import { Audit } from './screens/Audit';
import { Backups } from './screens/Backups';
import { Settings } from './screens/Settings';
import { Containers } from './screens/Containers';
import { Events } from './screens/Events';
import { Changes } from './screens/Files';
import { HostDetail } from './screens/HostDetail';
import { Hosts } from './screens/Hosts';
import { Overview } from './screens/Overview';
import { Routes } from './screens/Routes';
import { Schedules } from './screens/Schedules';
import { Units } from './screens/Units';
import { SshHosts } from './screens/SshHosts';
import { Updates } from './screens/Updates';
import { World } from './screens/World';
import { reconnectNow } from './stream';
import { currentTheme, setTheme, type Theme } from './theme';
import type { Me } from './types';
import { useFleet } from './useFleet';

export function Logo() {
  return (
    <svg class="logo" viewBox="0 0 24 24" aria-hidden="true">
      <rect x="2" y="5" width="9" height="14" rx="2" />
      <rect x="13" y="5" width="9" height="14" rx="2" />
    </svg>
  );
}

const NAV: { href: string; label: string; match: (p: string) => boolean; needs?: Action; sep?: boolean }[] = [
  { href: '/', label: 'Overview', match: (p: string) => p === '/' },
  { href: '/hosts', label: 'Hosts', match: (p: string) => p.startsWith('/hosts') },
  { href: '/containers', label: 'Containers', match: (p: string) => p === '/containers' },
  { href: '/units', label: 'Units', match: (p: string) => p === '/units' },
  { href: '/routes', label: 'Routes', match: (p: string) => p === '/routes' },
  { href: '/schedules', label: 'Schedules', match: (p: string) => p === '/schedules' },
  { href: '/backups', label: 'Backups', match: (p: string) => p === '/backups' },
  { href: '/alerts', label: 'Alerts', match: (p: string) => p === '/alerts' },
  { href: '/updates', label: 'Updates', match: (p: string) => p === '/updates' },
  { href: '/events', label: 'Events', match: (p: string) => p === '/events' },
  { href: '/changes', label: 'Changes', match: (p: string) => p === '/changes' },
  { href: '/network', label: 'Network', match: (p: string) => p === '/network' },
  { href: '/world', label: 'World', match: (p: string) => p === '/world' },
  { href: screenHref('/audit'), label: 'Audit', match: (p: string) => p === '/audit', needs: 'audit.read', sep: true },
  { href: '/ssh', label: 'SSH', match: (p: string) => p === '/ssh', needs: 'ssh.manage' },
  { href: screenHref('/settings/account'), label: 'Settings', match: (p: string) => p.startsWith('/settings'), needs: 'account.manage' },
];

type NetworkScreen = typeof import('./network/Network').Network;
let networkScreen: NetworkScreen | null = null;

/** The network screen, loaded on first use (its own chunk: the map's code stays out of the main bundle). */
function LazyNetwork({ query }: { query: URLSearchParams }) {
  const [Screen, setScreen] = useState<NetworkScreen | null>(() => networkScreen);
  const [error, setError] = useState('');
  useEffect(() => {
    if (Screen) return;
    import('./network/Network').then(
      (m) => {
        networkScreen = m.Network;
        setScreen(() => m.Network);
      },
      (err) => setError((err as Error).message),
    );
  }, []);
  if (error) return <Empty title="The network map could not be loaded">{error}</Empty>;
  if (!Screen) return <p class="muted">Loading the network map…</p>;
  return <Screen query={query} />;
}

/** Replaces the URL (a screen's canonical address). */
function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, { replace: true }), [to]);
  return null;
}

function screen(route: Route, theme: Theme, me: Me, onEnded: () => void) {
  const p = route.path;
  if (p === '/') return <Overview />;
  if (p === '/hosts') return <Hosts query={route.query} />;
  const m = /^\/hosts\/([^/]+)$/.exec(p);
  if (m) return <HostDetail id={decodeURIComponent(m[1])} query={route.query} theme={theme} />;
  if (p === '/containers') return <Containers query={route.query} />;
  if (p === '/units') return <Units query={route.query} />;
  if (p === '/routes') return <Routes query={route.query} />;
  if (p === '/schedules') return <Schedules />;
  if (p === '/backups') return <Backups query={route.query} />;
  if (p === '/alerts') return <Alerts query={route.query} />;
  if (p === '/updates') return <Updates query={route.query} />;
  if (p === '/events') return <Events query={route.query} />;
  if (p === '/changes') return <Changes query={route.query} />;
  if (p === '/network') return <LazyNetwork query={route.query} />;
  if (p === '/world') return <World theme={theme} role={me.role} />;
  if (p === '/ssh')
    return can(me.role, 'ssh.manage') ? (
      <SshHosts />
    ) : (
      <Empty title="Hosts over SSH are for admins" testId="forbidden">
        Your role ({me.role}) cannot add them. <Link href="/">Back to the overview</Link>
      </Empty>
    );
  if (p === '/audit')
    return can(me.role, 'audit.read') ? (
      <Audit query={route.query} />
    ) : (
      <Empty title="The audit trail is for admins" testId="forbidden">
        Your role ({me.role}) cannot read it. <Link href="/">Back to the overview</Link>
      </Empty>
    );
  if (p === '/settings') return <Redirect to={screenHref('/settings/account')} />;
  const s = /^\/settings\/([^/]+)$/.exec(p);
  if (s) return <Settings me={me} tab={s[1]} onEnded={onEnded} />;
  return (
    <Empty title="No such page" testId="not-found">
      <Link href="/">Back to the overview</Link>
    </Empty>
  );
}

function LinkBanner() {
  const fleet = useFleet();
  const [, tick] = useState(0);
  useEffect(() => {
    if (fleet.link !== 'offline') return;
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [fleet.link]);
  if (fleet.link !== 'offline') return null;
  const secs = Math.max(0, Math.ceil((fleet.retryAt - Date.now()) / 1000));
  return (
    <div class="banner" role="status" data-testid="offline-banner">
      <span>Offline — live updates paused. Reconnecting{secs > 0 ? ` in ${secs} s` : '…'}</span>
      <button type="button" class="btn btn-small" onClick={reconnectNow}>
        Retry now
      </button>
    </div>
  );
}

function Counts() {
  const fleet = useFleet();
  const nodes = fleet.list();
  const up = nodes.filter((n) => n.connected).length;
  return (
    <span class="counts" data-testid="counts">
      <span class={`live-dot ${fleet.link}`} title={fleet.link === 'live' ? 'live' : fleet.link} data-testid="link-state" data-state={fleet.link} />
      {fleet.loaded ? `${nodes.length} host${nodes.length === 1 ? '' : 's'} · ${up} up · ${nodes.length - up} down` : 'connecting…'}
    </span>
  );
}

export function Shell({ me, route, onSignOut, onEnded }: { me: Me; route: Route; onSignOut: () => void; onEnded: () => void }) {
  const [theme, setThemeState] = useState<Theme>(currentTheme);
  const toggleTheme = () => {
    const next = theme === 'dark' ? 'light' : 'dark';
    setTheme(next);
    setThemeState(next);
  };

  // "/" jumps to the screen's search box, as in most dashboards.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) return;
      const search = document.querySelector<HTMLInputElement>('input[type="search"]');
      if (search) {
        e.preventDefault();
        search.focus();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  return (
    <RoleContext.Provider value={me.role}>
      <div class="shell" id="shell">
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="topbar">
          <Link class="brand" href="/">
            <Logo />
            <span>twinbay</span>
          </Link>
          <Counts />
          <span class="spacer" />
          <button type="button" class="btn btn-ghost" onClick={toggleTheme} aria-label={`Switch to ${theme === 'dark' ? 'light' : 'dark'} theme`} data-testid="theme-toggle">
            {theme === 'dark' ? '☀' : '☾'}
          </button>
          <Link class="user" href={screenHref('/settings/account')} title="Your account" data-testid="user">
            {me.username} <small>{me.role}</small>
          </Link>
          <button type="button" class="btn btn-ghost" onClick={onSignOut} data-testid="signout">
            Sign out
          </button>
        </header>
        <nav class="nav" aria-label="Main">
          {NAV.filter((n) => !n.needs || can(me.role, n.needs)).map((n) => (
            <Link key={n.href} href={n.href} class={`${n.match(route.path) ? 'active' : ''}${n.sep ? ' nav-sep' : ''}`} aria-current={n.match(route.path) ? 'page' : undefined} data-testid={`nav-${n.label.toLowerCase()}`}>
              {n.label}
              {n.href === '/alerts' && <AlertsBadge />}
            </Link>
          ))}
        </nav>
        <LinkBanner />
        <main id="main" class="main" tabIndex={-1}>
          {screen(route, theme, me, onEnded)}
        </main>
        <CommandLayer />
      </div>
    </RoleContext.Provider>
  );
}
