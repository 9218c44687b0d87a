// Listeners told at most once per animation frame, however often something
// changed (every 250 ms while the page is hidden and frames stop).

export class FrameListeners {
  private fns = new Set<() => void>();
  private scheduled = false;

  subscribe(fn: () => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }

  notify() {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      for (const fn of this.fns) fn();
    };
    if (document.visibilityState === 'hidden') setTimeout(run, 250);
    else requestAnimationFrame(run);
  }
}
