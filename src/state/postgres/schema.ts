import type { Pool } from 'pg';
import { inTransaction } from './pool';

/**
 * The PostgreSQL schema for scale-out, created by `bulkhead state init` (idempotent). Brokers only check
 * that it is there: a replica never changes the schema on its own, so a rolling upgrade cannot race
 * several replicas into migrating at once.
 *
 * - bulkhead_revocations: one row per revoked target, its current state and a version that grows by one
 *   on every change; replicas merge rows by version, so the order in which they hear of changes
 *   (pub/sub, resync, reconciliation) does not matter. Version 3: `expires_at` (a revocation with a TTL)
 *   and `tenant` (the stream that recorded it, for listing and lifting by tenant).
 * - bulkhead_audit_heads / bulkhead_audit: per-tenant hash chains. The head row is locked by every
 *   writer, which makes seq gap-free and ordered across replicas; it is also the acknowledged head that
 *   `verify` compares with, so records cut from the end are noticed. A trigger refuses UPDATE and DELETE
 *   on records (a superuser can still drop it; the hash chain is what proves integrity).
 * - bulkhead_audit_checkpoints: signed checkpoints of each tenant's head (src/audit/checkpoint.ts),
 *   apart from the records they vouch for and append-only like them. Version 2.
 * - bulkhead_signing_keys / bulkhead_audit_keys: the sealed token-signing and audit-checkpoint key rings,
 *   one row each, with a version for compare-and-swap writes. bulkhead_audit_keys: version 2.
 * - bulkhead_leases: leader locks (rotation) as leases on the server's clock.
 * - bulkhead_quarantines: durable copy of quarantined sessions (Redis holds the hot copy).
 */
/*
 * - bulkhead_argument_keys: each tenant's argument key (the key of `arguments_mac`), wrapped by the
 *   tenant's root, or a tombstone once the tenant was shredded. Version 4.
 * - Version 5: the append-only trigger lets one DELETE through: of a row whose tenant the transaction
 *   named in `bulkhead.audit_purge` (audit-purge.ts, `tenant delete --purge-audit`). UPDATE is refused
 *   as before, and so is any other DELETE.
 */
export const SCHEMA_VERSION = 5;

const DDL = `
CREATE TABLE IF NOT EXISTS bulkhead_schema (
  id integer PRIMARY KEY CHECK (id = 1),
  version integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bulkhead_revocations (
  key text PRIMARY KEY,
  target jsonb NOT NULL,
  reason text,
  revoked_at bigint NOT NULL,
  active boolean NOT NULL,
  version bigint NOT NULL
);
ALTER TABLE bulkhead_revocations ADD COLUMN IF NOT EXISTS expires_at bigint;
ALTER TABLE bulkhead_revocations ADD COLUMN IF NOT EXISTS tenant text;
CREATE TABLE IF NOT EXISTS bulkhead_audit_heads (
  tenant text PRIMARY KEY,
  seq bigint NOT NULL,
  hash text NOT NULL
);
CREATE TABLE IF NOT EXISTS bulkhead_audit (
  tenant text NOT NULL,
  seq bigint NOT NULL,
  hash text NOT NULL,
  record text NOT NULL,
  PRIMARY KEY (tenant, seq)
);
CREATE OR REPLACE FUNCTION bulkhead_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND OLD.tenant = current_setting('bulkhead.audit_purge', true) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'bulkhead_audit is append-only';
END $$;
DROP TRIGGER IF EXISTS bulkhead_audit_append_only ON bulkhead_audit;
CREATE TRIGGER bulkhead_audit_append_only BEFORE UPDATE OR DELETE ON bulkhead_audit
  FOR EACH ROW EXECUTE FUNCTION bulkhead_audit_append_only();
CREATE TABLE IF NOT EXISTS bulkhead_audit_checkpoints (
  tenant text NOT NULL,
  seq bigint NOT NULL,
  checkpoint text NOT NULL,
  PRIMARY KEY (tenant, seq)
);
DROP TRIGGER IF EXISTS bulkhead_audit_checkpoints_append_only ON bulkhead_audit_checkpoints;
CREATE TRIGGER bulkhead_audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON bulkhead_audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION bulkhead_audit_append_only();
CREATE TABLE IF NOT EXISTS bulkhead_audit_keys (
  id integer PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL,
  ring jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bulkhead_signing_keys (
  id integer PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL,
  ring jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bulkhead_leases (
  name text PRIMARY KEY,
  holder text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS bulkhead_quarantines (
  tenant text NOT NULL,
  session text NOT NULL,
  reason text NOT NULL,
  at bigint NOT NULL,
  PRIMARY KEY (tenant, session)
);
CREATE TABLE IF NOT EXISTS bulkhead_argument_keys (
  tenant text PRIMARY KEY,
  kek text,
  wrapped text,
  created_at timestamptz NOT NULL DEFAULT now(),
  shredded_at timestamptz,
  CHECK ((shredded_at IS NULL) = (wrapped IS NOT NULL AND kek IS NOT NULL))
);
`;

/**
 * Creates the schema, or upgrades an older one in place: every statement is idempotent (IF NOT EXISTS,
 * OR REPLACE, ADD COLUMN IF NOT EXISTS), so an older version is upgraded by running the same DDL. Safe to run concurrently and repeatedly.
 */
export async function initSchema(pool: Pool): Promise<{ version: number; created: boolean }> {
  return inTransaction(pool, async (client) => {
    // CREATE ... IF NOT EXISTS is not safe against itself running concurrently; serialise the inits.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('bulkhead:schema'))");
    const existing = await client.query("SELECT to_regclass('bulkhead_schema') AS t");
    const had = existing.rows[0]?.t !== null && (await client.query('SELECT version FROM bulkhead_schema WHERE id = 1')).rowCount === 1;
    await client.query(DDL);
    await client.query('INSERT INTO bulkhead_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = GREATEST(bulkhead_schema.version, EXCLUDED.version)', [SCHEMA_VERSION]);
    return { version: SCHEMA_VERSION, created: !had };
  });
}

/** Refuses to run on a database without the schema, or with a newer one than this build knows. */
export async function assertSchema(pool: Pool): Promise<void> {
  let version: number | undefined;
  try {
    const result = await pool.query<{ version: number }>('SELECT version FROM bulkhead_schema WHERE id = 1');
    version = result.rows[0]?.version;
  } catch (err) {
    if ((err as { code?: string }).code !== '42P01') throw err;
  }
  if (version === undefined) throw new Error('the PostgreSQL database has no Bulkhead schema: run `bulkhead state init --config FILE` first');
  if (version > SCHEMA_VERSION) throw new Error(`the PostgreSQL schema is version ${version}, newer than this build knows (${SCHEMA_VERSION}): upgrade Bulkhead`);
  if (version < SCHEMA_VERSION) throw new Error(`the PostgreSQL schema is version ${version}, older than this build needs (${SCHEMA_VERSION}): run \`bulkhead state init --config FILE\` to upgrade it`);
}
