import type { Checkpoint } from './checkpoint';

/**
 * Where checkpoints live: apart from the records they vouch for (embedded: their own files under the
 * data dir; scaled out: their own PostgreSQL table), so losing or rewriting a stream does not take its
 * evidence with it.
 */
export interface CheckpointStore {
  /** Durable before it resolves. */
  add(checkpoint: Checkpoint): Promise<void>;
  /**
   * Every stored entry for the tenant, in stored order, as parsed and not yet trusted: the verifier
   * checks each signature, so a forged or damaged entry is reported rather than silently dropped.
   * An entry that does not parse is `{ unparsable: true }`.
   */
  list(tenant: string): Promise<unknown[]>;
  tenants(): Promise<string[]>;
  /** Removes the tenant's checkpoints along with its purged stream (`tenant delete --purge-audit`); idempotent. */
  purge(tenant: string): Promise<void>;
}
