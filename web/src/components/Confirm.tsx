// A modal confirmation (native <dialog> with showModal(): the rest of the page
// is inert; Esc cancels). Tab and Shift+Tab cycle through its buttons (a modal
// dialog alone lets Tab leave for the browser's own toolbar), and focus goes
// back to whatever opened it when it closes.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/** Keeps Tab inside `d`: from its last focusable element to the first, and back. */
function trapTab(d: HTMLElement, e: KeyboardEvent) {
  if (e.key !== 'Tab') return;
  const all = [...d.querySelectorAll<HTMLElement>(FOCUSABLE)];
  if (all.length === 0) return;
  const first = all[0];
  const last = all[all.length - 1];
  const at = document.activeElement;
  if (e.shiftKey ? at === first || !d.contains(at) : at === last || !d.contains(at)) {
    e.preventDefault();
    (e.shiftKey ? last : first).focus();
  }
}

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
    // Still the opener: this runs before showModal() moves focus.
    const opener = document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : null;
    if (!d.open) d.showModal();
    cancel.current?.focus();
    const onClose = (e: Event) => {
      e.preventDefault();
      onCancel();
    };
    const onKey = (e: KeyboardEvent) => trapTab(d, e);
    d.addEventListener('cancel', onClose);
    d.addEventListener('keydown', onKey);
    return () => {
      d.removeEventListener('cancel', onClose);
      d.removeEventListener('keydown', onKey);
      if (d.open) d.close();
      if (opener?.isConnected) opener.focus();
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
