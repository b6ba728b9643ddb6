/**
 * Per-tenant, append-only, hash-chained audit (plus the broker's security stream, security-stream.ts). Each record's `hash` is SHA-256 over its canonical JSON
 * (without `hash`), which includes `prev_hash`; the first record's prev_hash is GENESIS_HASH.
 * Records carry references and hashes only: never a token, secret or credential value.
 */
export const GENESIS_HASH = '0'.repeat(64);

export interface AuditEvent {
  type: 'authorize' | 'complete' | 'revoke' | 'restore' | 'approval' | 'token' | 'quarantine' | 'quarantine_lift' | 'policy' | 'deny_summary' | 'export' | 'correlate' | 'tenant_export' | 'tenant_delete';
  decision?: 'allow' | 'deny';
  reason?: string;
  call_id?: string;
  server?: string;
  principal?: string;
  session?: string;
  jti?: string;
  /** A tool the server serves, or "(unknown)": an agent-chosen name is never stored (see tool_sha256). */
  tool?: string;
  /** SHA-256 of a requested tool name the server does not serve, so attempts can be told apart unread. */
  tool_sha256?: string;
  /** SHA-256 of the canonical JSON of the effective arguments. */
  arguments_sha256?: string;
  /** e.g. "vault:secret/data/tenants/acme/crm" — a reference, never a value. */
  credential_ref?: string;
  lease_id?: string;
  status?: string;
  records?: number;
  operator?: string;
  detail?: string;
  /** Cost units charged against budgets (allow: the estimate; complete: the reported usage). */
  cost?: number;
  /** Tokens the MCP server reported the call used (complete records). */
  tokens?: number;
  /** The version (content hash) of the policy the decision was made under. */
  policy_version?: string;
  /** deny_summary: how many denies past the tenant's audited-deny budget this record stands for. */
  denied?: number;
  /** deny_summary: those denies by reason code. */
  reasons?: Record<string, number>;
  /** deny_summary: ISO-8601 start of the interval it covers (the record's ts is its end). */
  since?: string;
  /**
   * The id of the HTTP request that caused the record, as in that request's platform log line and its
   * X-Request-Id: the one key an operator can join the two pipelines on (`bulkhead audit correlate`).
   */
  request_id?: string;
  /**
   * A token-level deny: the endpoint the token was presented to (e.g. "/v1/manifest"), for records that
   * /v1/authorize did not make (`type: "token"`) and for every record of the security stream.
   */
  endpoint?: string;
  /** Security stream only: SHA-256 of the refused token (security-stream.ts), never the token or a part of it. */
  token_sha256?: string;
}

export interface AuditRecord extends AuditEvent {
  tenant: string;
  /** 1-based, gap-free per tenant. */
  seq: number;
  /** ISO-8601. */
  ts: string;
  prev_hash: string;
  hash: string;
}

export interface AuditVerifyResult {
  ok: boolean;
  events: number;
  head: string;
  /** The first record that does not verify. */
  broken?: { seq: number; problem: string };
}

export interface AuditVerifyOptions {
  /** Hashes records must have at these seqs (from signed checkpoints): a recomputed chain differs there. */
  pins?: ReadonlyMap<number, string>;
}

export interface AuditLog {
  /** Resolves only once the record is durable (fsync or commit); rejects if it cannot be made so. */
  append(tenant: string, event: AuditEvent): Promise<AuditRecord>;
  read(tenant: string, options?: { afterSeq?: number; limit?: number }): Promise<AuditRecord[]>;
  verify(tenant: string, options?: AuditVerifyOptions): Promise<AuditVerifyResult>;
  tenants(): Promise<string[]>;
  ready?(): Promise<boolean>;
  close(): Promise<void>;
}
