/**
 * Every Redis key and channel Bulkhead uses, under one prefix (`broker.state.redis_prefix`), so several
 * deployments (or test runs) can share one Redis without seeing each other's state. Tenant ids cannot
 * contain ":" (see idSchema), so a tenant's keys cannot collide with another's.
 */
export interface Keyspace {
  prefix: string;
  /** Pub/sub: revocation changes, and replicas' acknowledgements of them. */
  revocationChannel: string;
  revocationAckChannel: string;
  /** Pub/sub: the shared signing key ring was written. */
  keysChannel: string;
  /** A replica reloaded its policy: the others reload theirs. */
  policyChannel: string;
  /** Sorted set of this tenant's recent allowed calls (score: time), for calls per minute. */
  rate(tenant: string): string;
  /** Sorted set of this tenant's concurrency slots (member: call id, score: expiry). */
  slots(tenant: string): string;
  /** Sorted set of live sessions (score: expiry). */
  sessions(tenant: string): string;
  /** Sorted set of principals holding live tokens (score: latest expiry). */
  principals(tenant: string): string;
  quarantined(tenant: string): string;
  /** Present once the quarantine sets were loaded from PostgreSQL (gone after a Redis restart). */
  quarantineLoaded: string;
  call(callId: string): string;
  /** Set of call ids that hold upstream leases (for the kill switch). */
  leasedCalls: string;
  approval(id: string): string;
  approvalPrefix: string;
  approvalOpen(callKeyHash: string): string;
  /** A pending approval's sealed arguments (outside approvalPrefix, so a SCAN of approvals does not meet them). */
  approvalArguments(id: string): string;
  approvalArgumentsPrefix: string;
  /** Sorted set of this tenant's pending approval ids (score: created_at), for operators to list. */
  approvalsPending(tenant: string): string;
  /** A pending login or an authorization code (key: a digest of the browser's random value). */
  oneTime(key: string): string;
  /** A budget counter: `key` is `t:<tenant>` or `p:<tenant>/<principal>`, `window` e.g. `h493817`. */
  budget(key: string, window: string): string;
  /** SCAN patterns matching every budget counter of the tenant and its principals (tenant delete). */
  tenantBudgets(tenant: string): string[];
}

export function createKeyspace(prefix: string): Keyspace {
  const p = prefix;
  return {
    prefix: p,
    revocationChannel: `${p}:revocations`,
    revocationAckChannel: `${p}:revocations:ack`,
    keysChannel: `${p}:keys`,
    policyChannel: `${p}:policy`,
    rate: (tenant) => `${p}:rate:${tenant}`,
    slots: (tenant) => `${p}:slots:${tenant}`,
    sessions: (tenant) => `${p}:sessions:${tenant}`,
    principals: (tenant) => `${p}:principals:${tenant}`,
    quarantined: (tenant) => `${p}:quarantined:${tenant}`,
    quarantineLoaded: `${p}:quarantined-loaded`,
    call: (callId) => `${p}:call:${callId}`,
    leasedCalls: `${p}:leased-calls`,
    approval: (id) => `${p}:approval:${id}`,
    approvalPrefix: `${p}:approval:`,
    approvalOpen: (hash) => `${p}:approval-open:${hash}`,
    approvalArguments: (id) => `${p}:approval-args:${id}`,
    approvalArgumentsPrefix: `${p}:approval-args:`,
    approvalsPending: (tenant) => `${p}:approvals-pending:${tenant}`,
    oneTime: (key) => `${p}:once:${key}`,
    budget: (key, window) => `${p}:budget:${key}:${window}`,
    tenantBudgets: (tenant) => [`${p}:budget:t:${tenant}:*`, `${p}:budget:p:${tenant}/*`],
  };
}
