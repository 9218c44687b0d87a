// What each role may do in the UI. Mirrors the hub's one authorization table
// (crates/hub/src/api/access.rs): the UI never offers what the hub would
// refuse. Every role-gated link or button asks `can(role, action)`.

import { createContext } from 'preact';

export type Role = 'viewer' | 'operator' | 'admin';

/** The signed-in user's role, for components deep in a screen (the shell provides it). */
export const RoleContext = createContext<string>('');

export const ROLES: Role[] = ['viewer', 'operator', 'admin'];

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** The least role each action needs. */
const NEEDS = {
  /** Own password, sign out everywhere (a signed-in user, not a token). */
  'account.manage': 'viewer',
  /** GET/POST/PATCH/DELETE /api/v1/users */
  'users.manage': 'admin',
  /** GET/POST/DELETE /api/v1/tokens */
  'tokens.manage': 'admin',
  /** GET /api/v1/audit */
  'audit.read': 'admin',
  /** /api/v1/ssh/…: the hub's SSH key, adding hosts over SSH (the SSH screen). */
  'ssh.manage': 'admin',
  // Commands (docs/commands.md): POST /api/v1/nodes/{id}/commands by verb.
  'command.status': 'viewer',
  'command.version': 'viewer',
  'command.logs': 'operator',
  'command.start': 'operator',
  'command.stop': 'operator',
  'command.restart': 'operator',
  /** The agent's update (docs/updates.md): the host page's "Update agent". */
  'command.update': 'operator',
  /** POST /api/v1/rollouts and their pause, resume and abort (the Updates screen). */
  'rollout.manage': 'admin',
  /** An action of the agent's policy: operator, or the action's own role if higher (canRunAction). */
  'command.action': 'operator',
  /** GET /api/v1/nodes/{id}/files/diff: file content, even redacted, is more than metadata. */
  'files.diff': 'operator',
  /** PUT /api/v1/layout (the 3D world's sites, rooms, racks and places). */
  'layout.edit': 'admin',
  /** DELETE /api/v1/commands/{id} */
  'command.cancel': 'operator',
} as const satisfies Record<string, Role>;

export type Action = keyof typeof NEEDS;

export function isRole(s: string): s is Role {
  return s in RANK;
}

/** Whether `role` may do `action`; an unknown role may do nothing. */
export function can(role: string | undefined, action: Action): boolean {
  if (!role || !isRole(role)) return false;
  return RANK[role] >= RANK[NEEDS[action]];
}

/** Whether `role` may run an action whose policy asks for `actionRole` (operator at least, its own role if higher). */
export function canRunAction(role: string | undefined, actionRole: string | null | undefined): boolean {
  return can(role, 'command.action') && atLeast(role, actionRole);
}

/** Whether `role` reaches `needed` (a role name from the hub); an unknown name is the hub's to judge. */
export function atLeast(role: string | undefined, needed: string | null | undefined): boolean {
  if (!role || !isRole(role)) return false;
  return !needed || !isRole(needed) || RANK[role] >= RANK[needed];
}

export const ROLE_HELP: Record<Role, string> = {
  viewer: 'reads the fleet',
  operator: 'reads the fleet; starts, stops and restarts containers and units, reads their logs, runs actions',
  admin: 'everything, including people, API tokens and the audit trail',
};
