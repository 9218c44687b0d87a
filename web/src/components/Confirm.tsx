// A modal confirmation (native <dialog>: focus stays inside, Esc cancels).

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export function Confirm({
  title,
  children,
  confirmLabel,
  onConfirm,
  onCancel,
}: {
  title: string;
  children?: ComponentChildren;
  confirmLabel: string;
  /** Resolves when done; a rejection's message is shown in the dialog. */
  onConfirm: () => Promise<void>;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (!d.open) d.showModal();
    cancel.current?.focus();
    const onClose = (e: Event) => {
      e.preventDefault();
      onCancel();
    };
    d.addEventListener('cancel', onClose);
    return () => {
      d.removeEventListener('cancel', onClose);
      if (d.open) d.close();
    };
  }, []);

  const go = async () => {
    setBusy(true);
    setError('');
    try {
      await onConfirm();
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };

  return (
    <dialog ref={ref} class="dialog" aria-labelledby="confirm-title" data-testid="confirm">
      <h2 id="confirm-title">{title}</h2>
      {children && <div class="dialog-body">{children}</div>}
      {error && (
        <p class="form-error" role="alert" data-testid="confirm-error">
          {error}
        </p>
      )}
      <div class="dialog-actions">
        <button ref={cancel} type="button" class="btn" onClick={onCancel} data-testid="confirm-cancel">
          Cancel
        </button>
        <button type="button" class="btn btn-danger" onClick={go} disabled={busy} data-testid="confirm-ok">
          {busy ? 'Working…' : confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
