// The /world screen's door: its code and three.js come in their own chunk
// (a dynamic import), fetched the first time someone opens the screen, so
// the rest of the UI does not carry them.

import type { FunctionComponent } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ErrorBox } from '../components/bits';
import type { Theme } from '../theme';

type Props = { theme: Theme; role: string };
let loaded: FunctionComponent<Props> | null = null;

export function World(props: Props) {
  const [Screen, setScreen] = useState<FunctionComponent<Props> | null>(() => loaded);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    if (Screen) return;
    let live = true;
    import('../world/WorldScreen').then(
      (m) => {
        loaded = m.WorldScreen;
        if (live) setScreen(() => m.WorldScreen);
      },
      (e) => live && setError((e as Error).message),
    );
    return () => {
      live = false;
    };
  }, [gen]);
  if (error) return <ErrorBox message={`The 3D view could not be loaded: ${error}`} retry={() => (setError(''), setGen((g) => g + 1))} />;
  if (!Screen) return <p class="muted">Loading the 3D view…</p>;
  return <Screen {...props} />;
}
