// Lifecycle verbs on a container, a unit or the agent: the ones its agent
// answers (policy) and the user's role allows (access.ts). Buttons on wide
// screens, one menu on phones (a row is a two-line card there).

import { useContext } from 'preact/hooks';
import { can, RoleContext } from '../access';
import { runVerb, targetLabel, verbsFor } from '../commands';
import { cap } from '../format';
import type { RowHost } from '../store';
import type { Target, Verb } from '../types';
import { PHONE, useMedia } from '../useMedia';

/** What a row offers, in this order: what is running can be restarted or stopped, what is not, started. */
export function offered(running: boolean): Verb[] {
  return running ? ['logs', 'status', 'restart', 'stop'] : ['logs', 'status', 'start'];
}

export function Verbs({ node, target, offer }: { node: RowHost; target: Target; offer: Verb[] }) {
  const role = useContext(RoleContext);
  const phone = useMedia(PHONE);
  const allowed = verbsFor(node.policy, target.kind);
  const verbs = offer.filter((v) => allowed.includes(v) && can(role, `command.${v}`));
  if (verbs.length === 0) return null;
  const off = !node.connected;
  const what = targetLabel(target);
  if (phone) {
    return (
      <select
        class="verb-menu"
        aria-label={`Command on ${what}`}
        disabled={off}
        value=""
        onChange={(e) => {
          const v = e.currentTarget.value as Verb;
          e.currentTarget.value = '';
          if (v) runVerb(node, target, v);
        }}
        data-testid="verb-menu"
      >
        <option value="">Run…</option>
        {verbs.map((v) => (
          <option key={v} value={v}>
            {cap(v)}
          </option>
        ))}
      </select>
    );
  }
  return (
    <>
      {verbs.map((v) => (
        <button
          key={v}
          type="button"
          class={`btn btn-small verb${v === 'stop' ? ' btn-danger-outline' : ''}`}
          disabled={off}
          title={off ? 'The agent is not connected' : `${cap(v)} ${what}${v === 'logs' ? ' (follows live)' : ''}`}
          aria-label={`${cap(v)} ${what}`}
          onClick={() => runVerb(node, target, v)}
          data-testid={`verb-${v}`}
        >
          {cap(v)}
        </button>
      ))}
    </>
  );
}
