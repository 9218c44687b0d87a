// Light and dark themes: the system's choice unless the user picked one.

import { resetSparkColours } from './components/Sparkline';

export type Theme = 'light' | 'dark';
const KEY = 'twinbay.theme';
const media = window.matchMedia('(prefers-color-scheme: dark)');

export function currentTheme(): Theme {
  const saved = localStorage.getItem(KEY);
  if (saved === 'light' || saved === 'dark') return saved;
  return media.matches ? 'dark' : 'light';
}

export function applyTheme(theme: Theme) {
  document.documentElement.dataset.theme = theme;
  resetSparkColours();
}

export function setTheme(theme: Theme) {
  localStorage.setItem(KEY, theme);
  applyTheme(theme);
}

applyTheme(currentTheme());
