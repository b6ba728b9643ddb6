import type { Readiness } from '../observability/readiness';
import type { AuditKeySet, AuditSigner } from './audit-keys';
import type { PurgeStatement } from './purge';
import type { SealStatement } from './seal';

/**
 * Per-tenant, append-only, hash-chained audit (plus the broker's security stream, security-stream.ts). Each record's `hash` is SHA-256 over its canonical JSON
 * (without `hash`), which includes `prev_hash`; the first record's prev_hash is GENESIS_HASH.
 * Records carry references and hashes only: never a token, secret or credential value.
 */
export const GENESIS_HASH = '0'.repeat(64);

export interface AuditEvent {
  type: 'authorize' | 'complete' | 'revoke' | 'restore' | 'approval' | 'token' | 'quarantine' | 'quarantine_lift' | 'policy' | 'deny_summary' | 'export' | 'correlate' | 'tenant_export' | 'tenant_delete' | 'tenant_purge' | 'seal';
  /**
   * `intent` (authorize only): the call passed every check and its credential is being resolved from an
   * upstream; the credential is released only once this record is durable, and the call's outcome (an
   * `allow` or a `deny` with the same call_id) follows it. An intent with no outcome after it is a call
   * the broker stopped between the two: it may have received its credential (`audit verify` lists it).
   */
  decision?: 'allow' | 'deny' | 'intent';
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
  /**
   * HMAC-SHA256 (hex) of the canonical JSON of the effective arguments under the tenant's argument key
   * (src/argument-keys): equal within a tenant, meaningless outside it. Records written before keyed
   * MACs carried a plain `arguments_sha256` instead; the chain verifies both alike.
   */
  arguments_mac?: string;
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
  /** seal: the operator's signed statement about the broken region before this record (seal.ts). */
  seal?: SealStatement;
  /** tenant_export (status exported): SHA-256 of the canonical JSON of the audit bundle the export holds (its records through `records`). */
  bundle_sha256?: string;
  /** tenant_purge (security stream only): the signed statement that a tenant's stream was purged (purge.ts). */
  purge?: PurgeStatement;
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
  /**
   * Breaks an operator sealed (`bulkhead audit seal`): the chain broke, and a signed seal record
   * acknowledges it and starts a new segment. The stream verifies, but not silently: each is reported.
   */
  sealed?: SealedBreak[];
  /** Intent records with no outcome record after them (see AuditEvent.decision), oldest first. */
  unfinished?: UnfinishedCall[];
}

/** A call whose intent is recorded and its outcome is not: it may have received its credential. */
export interface UnfinishedCall {
  seq: number;
  call_id: string;
}

export interface SealedBreak {
  /** The seal record's seq (the new segment starts there). */
  seal_seq: number;
  /** The last record that verified before the break, and the first that did not. */
  verified_seq: number;
  break_seq: number;
  /** What the verifier finds there now (the seal is only accepted if the region is byte for byte what was sealed). */
  found: string;
  /** What the seal says was found when it was made. */
  recorded: string;
  operator?: string;
  reason?: string;
  ts: string;
}

export interface AuditVerifyOptions {
  /** Hashes records must have at these seqs (from signed checkpoints): a recomputed chain differs there. */
  pins?: ReadonlyMap<number, string>;
  /** The audit keys a seal must be signed by; without them no seal is accepted (a break stays a break). */
  keys?: AuditKeySet;
}

export interface LockedStream {
  /** What the writer found (the chain broke, the file was rewritten, cut or removed). */
  problem: string;
  /** ISO-8601, when the writer first refused the stream. */
  since: string;
}

export interface SealRequest {
  operator: string;
  reason: string;
  signer: AuditSigner;
  /** The seq the signed checkpoints reached: the seal starts past it, so no signed seq is reused. */
  signedThrough: number;
  requestId?: string;
}

export interface AuditLog {
  /** Resolves only once the record is durable (fsync or commit); rejects if it cannot be made so. */
  append(tenant: string, event: AuditEvent): Promise<AuditRecord>;
  read(tenant: string, options?: { afterSeq?: number; limit?: number }): Promise<AuditRecord[]>;
  verify(tenant: string, options?: AuditVerifyOptions): Promise<AuditVerifyResult>;
  tenants(): Promise<string[]>;
  /**
   * Whether the writer takes writes now — the real state of the last write, not a guess — or what
   * failed. A writer that failed re-probes here, so readiness comes back once the fault is gone.
   */
  ready?(): Promise<Readiness>;
  /** Streams the writer refuses to append to because their stored chain does not verify. */
  locked?(): ReadonlyMap<string, LockedStream>;
  /** Seals a locked stream (seal.ts), so the tenant is served again; refuses a stream that is not locked. */
  seal?(tenant: string, input: SealRequest): Promise<AuditRecord>;
  /**
   * Removes the tenant's whole stream (`tenant delete --purge-audit`, after its signed purge record was
   * written to the security stream); idempotent. The next record of the tenant starts a new stream at seq 1.
   */
  purge(tenant: string): Promise<void>;
  close(): Promise<void>;
}
