import { useEffect, useReducer } from 'preact/hooks';
import { fleet } from './store';

/** Re-renders the calling component whenever the fleet changes (at most once a frame). */
export function useFleet() {
  const [, tick] = useReducer((n: number) => n + 1, 0);
  useEffect(() => fleet.subscribe(() => tick(0)), []);
  return fleet;
}
