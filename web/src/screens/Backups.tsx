// The /backups screen's door: the screen's code (BackupsScreen.tsx and its
// forms) comes in its own chunk, fetched the first time someone opens it, so
// the rest of the UI does not carry it.

import type { FunctionComponent } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ErrorBox } from '../components/bits';

type Props = { query: URLSearchParams };
let loaded: FunctionComponent<Props> | null = null;

export function Backups(props: Props) {
  const [Screen, setScreen] = useState<FunctionComponent<Props> | null>(() => loaded);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    if (Screen) return;
    let live = true;
    import('./BackupsScreen').then(
      (m) => {
        loaded = m.BackupsScreen;
        if (live) setScreen(() => m.BackupsScreen);
      },
      (e) => live && setError((e as Error).message),
    );
    return () => {
      live = false;
    };
  }, [gen]);
  if (error) return <ErrorBox message={`The Backups screen could not be loaded: ${error}`} retry={() => (setError(''), setGen((g) => g + 1))} />;
  if (!Screen) return <p class="muted">Loading the Backups screen…</p>;
  return <Screen {...props} />;
}
