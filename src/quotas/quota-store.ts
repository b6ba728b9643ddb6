/** Per-tenant rate and concurrency counters. Embedded: in memory. Scale-out: Redis, atomic across replicas. */
export interface RateDecision {
  allowed: boolean;
  /** Whole seconds until a call would be allowed again (for Retry-After). */
  retryAfterSeconds: number;
}

export interface QuotaUsage {
  calls_last_minute: number;
  in_flight: number;
}

export interface QuotaStore {
  /** Counts one call against the tenant's calls-per-minute budget. */
  takeCall(tenant: string, perMinute: number): Promise<RateDecision>;
  /** Takes a concurrency slot for this call; the slot expires after ttlMs if never released. */
  acquireSlot(tenant: string, callId: string, limit: number, ttlMs: number): Promise<boolean>;
  /** Frees the slot; false if it was not held (already released or expired). */
  releaseSlot(tenant: string, callId: string): Promise<boolean>;
  usage(tenant: string): Promise<QuotaUsage>;
  /** Drops the tenant's call window and slots (tenant delete). Idempotent. */
  forgetTenant(tenant: string): Promise<void>;
  close?(): Promise<void>;
}
