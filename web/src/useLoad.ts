import { useEffect, useState } from 'preact/hooks';

export interface Loaded<T> {
  data: T | null;
  error: string;
  loading: boolean;
  reload: () => void;
}

/** Loads once per `deps` change; `reload()` loads again, keeping what is shown meanwhile. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const [gen, setGen] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError('');
        setLoading(false);
      },
      (err) => {
        if (!live) return;
        setError((err as Error).message);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, gen]);
  return { data, error, loading, reload: () => setGen((g) => g + 1) };
}
