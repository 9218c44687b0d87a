// URLs for every screen: history API, deep links and the back button.

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  path: string;
  query: URLSearchParams;
}

type Listener = () => void;
const listeners = new Set<Listener>();

// Every screen's path is one the hub answers with the app
// (crates/hub/src/ui.rs, SPA_ROUTES), so reloads and deep links work.

/** The URL of a screen's path (with its own query, if any). */
export function screenHref(path: string, query?: Record<string, string>): string {
  const s = new URLSearchParams(query).toString();
  return s ? `${path}?${s}` : path;
}

function current(): Route {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  return { path, query: new URLSearchParams(location.search) };
}

window.addEventListener('popstate', () => listeners.forEach((fn) => fn()));

export function navigate(url: string, opts: { replace?: boolean } = {}) {
  const before = location.pathname + location.search;
  if (url === before) return;
  if (opts.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  listeners.forEach((fn) => fn());
  if (!opts.replace && new URL(url, location.href).pathname !== location.pathname) window.scrollTo(0, 0);
}

/** Replaces some query parameters of the current URL (filters, tabs). */
export function setQuery(params: Record<string, string | null | undefined>, opts: { push?: boolean } = {}) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(params)) {
    if (v == null || v === '') q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  navigate(location.pathname + (s ? `?${s}` : ''), { replace: !opts.push });
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const fn = () => setRoute(current());
    listeners.add(fn);
    return () => listeners.delete(fn);
  }, []);
  return route;
}

interface LinkProps {
  href: string;
  children?: ComponentChildren;
  class?: string;
  title?: string;
  role?: 'tab' | 'link';
  'aria-current'?: 'page';
  'aria-selected'?: boolean;
  'data-testid'?: string;
}

/** An ordinary link (works with a middle click, copy link, open in new tab) that navigates in place. */
export function Link({ href, children, ...rest }: LinkProps) {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}

export const hostUrl = (id: string, tab?: string) => `/hosts/${encodeURIComponent(id)}${tab ? `?tab=${tab}` : ''}`;
