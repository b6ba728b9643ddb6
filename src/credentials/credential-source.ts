import type { CredentialSpec, Policy } from '../policy/schema';

/**
 * What every upstream credential source implements (adapters/local.ts, adapters/vault.ts, adapters/aws.ts).
 * The core never imports a vendor SDK; it only sees this interface.
 */
export interface CredentialRequest {
  tenant: string;
  /** The credential's name in the tenant's policy. */
  name: string;
  spec: CredentialSpec;
  session: string;
  callId: string;
  /** Aborted when the broker's per-call upstream timeout fires. Sources must pass it to their I/O. */
  signal: AbortSignal;
}

export interface ResolvedCredential {
  source: CredentialSpec['source'];
  /** A reference safe to log and audit (path, secret id, role), never the value. */
  ref: string;
  value: string;
  lease_id?: string;
  /** ISO-8601, when the upstream says the value stops working. */
  expires_at?: string;
}

export interface CredentialSource {
  /** The `source` values of CredentialSpec this adapter serves. */
  readonly sources: readonly CredentialSpec['source'][];
  /**
   * True for a source that answers from this machine's own disk and memory and so cannot hang on a
   * peer (the embedded store): the resolver calls it without a deadline (no timer, no AbortController
   * per call), and its signal never aborts.
   */
  readonly cannotHang?: boolean;
  /**
   * Resolves the tenant's credential now. Throw BrokerError('upstream_unavailable') (or anything: the
   * pipeline treats every throw as upstream_unavailable) — never return another tenant's or stale data.
   * Error messages must not contain upstream response bodies.
   */
  resolve(request: CredentialRequest): Promise<ResolvedCredential>;
  /** Revokes an upstream lease early (session killed, call completed). */
  revokeLease?(tenant: string, leaseId: string): Promise<void>;
  /** Readiness probe for /readyz. */
  ready?(): Promise<boolean>;
  /** Follows a reloaded policy (e.g. a new tenant's Vault identity). Throwing refuses the reload. */
  reconfigure?(policy: Policy): void;
  close?(): Promise<void>;
}
