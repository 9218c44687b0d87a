// The host page's agent version and "Update agent" (operators and up): the
// `update` lifecycle verb with a release chosen from the hub's, run and
// followed in the console like any command (docs/updates.md).

import { useContext, useState } from 'preact/hooks';
import { can, RoleContext } from '../access';
import { runCommand } from '../commands';
import { Link, screenHref } from '../router';
import type { NodeView } from '../types';
import { useLoad } from '../useLoad';
import { agentVersion, compareVersions, updatesApi } from './UpdatesApi';

export function AgentVersion({ node }: { node: NodeView }) {
  const role = useContext(RoleContext);
  const [open, setOpen] = useState(false);
  const v = agentVersion(node);
  return (
    <>
      <span class="badge muted agent-version" title="The agent's version" data-testid="detail-agent-version" data-version={v}>
        agent <span class="mono">{v || '?'}</span>
      </span>
      {can(role, 'command.update') && (
        <button type="button" class="btn btn-small" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="update-agent">
          Update agent
        </button>
      )}
      {open && <UpdateAgentForm node={node} onDone={() => setOpen(false)} />}
    </>
  );
}

function UpdateAgentForm({ node, onDone }: { node: NodeView; onDone: () => void }) {
  const releases = useLoad(() => updatesApi.releases(), []);
  const arch = node.host.arch;
  const current = agentVersion(node);
  // This host's architecture's releases (all of them if it did not say).
  const versions = [...new Set((releases.data ?? []).filter((r) => !arch || r.arch === arch).map((r) => r.version))].sort(compareVersions);
  const [picked, setPicked] = useState('');
  const version = picked || versions.find((v) => v !== current) || versions[0] || '';

  const submit = (e: Event) => {
    e.preventDefault();
    if (!version) return;
    void runCommand(node, `update agent to ${version}`, { op: 'lifecycle', target: { kind: 'agent' }, verb: 'update', version });
    onDone();
  };

  return (
    <form class="panel update-agent" onSubmit={submit} aria-label={`Update the agent of ${node.hostname}`} data-testid="update-agent-form">
      {releases.error ? (
        <p class="form-error" role="alert">
          {releases.error}
        </p>
      ) : !releases.data ? (
        <p class="muted">Loading the releases…</p>
      ) : versions.length === 0 ? (
        <p class="muted" data-testid="update-agent-none">
          No release for {arch || 'this architecture'} yet. <Link href={screenHref('/updates')}>Updates</Link>
        </p>
      ) : (
        <>
          <div class="field">
            <label for={`update-version-${node.id}`}>Release</label>
            <select id={`update-version-${node.id}`} value={version} onChange={(e) => setPicked(e.currentTarget.value)} data-testid="update-agent-version">
              {versions.map((v) => (
                <option key={v} value={v}>
                  {v}
                  {v === current ? ' (installed)' : ''}
                </option>
              ))}
            </select>
          </div>
          <button type="submit" class="btn btn-primary" disabled={!node.connected} data-testid="update-agent-run">
            Update to {version}
          </button>
          <span class="muted small">
            {node.connected ? 'The agent downloads it, checks its signature, restarts on it and rolls back by itself if it is not healthy.' : 'The agent is not connected.'}
          </span>
        </>
      )}
      <button type="button" class="btn btn-ghost" onClick={onDone}>
        Cancel
      </button>
    </form>
  );
}
