/**
 * Sessions and in-flight calls. A call record ties a call_id to the server, tenant and session that
 * opened it, so /v1/complete can only close calls the same server opened, and so leases can be revoked
 * when the session is killed.
 */
export interface CallRecord {
  call_id: string;
  server: string;
  tenant: string;
  principal: string;
  session: string;
  tool: string;
  lease_ids: string[];
  max_records?: number;
  /** Epoch ms. */
  started_at: number;
  /** Epoch ms when the call expires with its token; lets a refused completion put the call back for the rest of its life. */
  expires_at?: number;
  /** What the call was charged against budgets, so reported usage can correct it. */
  spend?: { cost: number; keys: string[]; at: number };
}

/** A quarantined session, as operators list it. */
export interface QuarantineEntry {
  tenant: string;
  session: string;
  reason: string;
  /** Epoch ms. */
  at: number;
}

export interface TenantSessions {
  live: Array<{ session: string; expires_at: number }>;
  quarantined: string[];
}

export interface SessionStore {
  /** Notes a live session (and, given, its principal) until its token's expiry (epoch ms). */
  touch(tenant: string, session: string, expiresAt: number, principal?: string): Promise<void>;
  liveSessions(tenant: string, now: number): Promise<number>;
  /** Which of these tenants a live session belongs to, if any (so the kill switch can audit it there). */
  tenantOfSession(session: string, tenants: readonly string[]): Promise<string | null>;
  /** Whether this principal holds a token that is still live (so the kill switch can tell a typo from a federated principal). */
  hasLivePrincipal(tenant: string, principal: string, now: number): Promise<boolean>;
  quarantine(tenant: string, session: string, reason: string): Promise<void>;
  isQuarantined(tenant: string, session: string): Promise<boolean>;
  /** Quarantined sessions, of one tenant or all. */
  quarantines(tenant?: string): Promise<QuarantineEntry[]>;
  /** Releases a quarantined session (durable, and in effect for every replica, before it resolves); null when it was not quarantined. */
  liftQuarantine(tenant: string, session: string): Promise<QuarantineEntry | null>;
  /** Throws if the call id is already in flight (a live call id belongs to whoever opened it). */
  putCall(call: CallRecord, ttlMs: number): Promise<void>;
  /** Whether a live call holds this id; lets authorize refuse a reused id before it spends quota. */
  hasCall(callId: string): Promise<boolean>;
  /**
   * Removes and returns the call (so it completes once). With `server`, only a call that server opened:
   * another server's attempt must leave the call (its slot, its leases) in place, not erase it.
   */
  takeCall(callId: string, server?: string): Promise<CallRecord | null>;
  /** Upstream leases still held by a tenant's calls, optionally only one session's. */
  leasesOf(filter: { tenant?: string; session?: string; principal?: string }): Promise<CallRecord[]>;
  /** The tenant's live sessions (with their expiry) and quarantined sessions, for a tenant export. */
  tenantSessions(tenant: string, now: number): Promise<TenantSessions>;
  /**
   * Deletes everything of the tenant: live sessions, quarantines (at rest too) and calls (tenant delete,
   * after the tenant is revoked and its calls' leases are revoked). Idempotent.
   */
  forgetTenant(tenant: string): Promise<void>;
  close?(): Promise<void>;
}
