// What each role may do in the UI. Mirrors the hub's one authorization table
// (crates/hub/src/api/access.rs): the UI never offers what the hub would
// refuse. Every role-gated link or button asks `can(role, action)`.

export type Role = 'viewer' | 'operator' | 'admin';

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

export const ROLE_HELP: Record<Role, string> = {
  viewer: 'reads the fleet',
  operator: 'reads the fleet; will act on hosts (restart containers)',
  admin: 'everything, including people, API tokens and the audit trail',
};
