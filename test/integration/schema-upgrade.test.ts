import type { Pool } from 'pg';
import { createScratchDatabase } from '../../bench/scratch-state';
import { purgeAuditRows } from '../../src/state/postgres/audit-purge';
import { createPgPool, inTransaction } from '../../src/state/postgres/pool';
import { assertSchema, initSchema, SCHEMA_VERSION } from '../../src/state/postgres/schema';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/** A version-1 database (before signed audit checkpoints) is refused by replicas and upgraded in place by `state init`. */
describeWithUpstream(['postgres'], 'PostgreSQL schema upgrades', () => {
  let db: Awaited<ReturnType<typeof createScratchDatabase>>;
  let pool: Pool;

  beforeAll(async () => {
    db = await createScratchDatabase(upstreamEnv().DATABASE_URL, 'schema_upgrade');
    pool = createPgPool({ url: db.url, timeoutMs: 5000 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  test('replicas refuse version 1; state init adds the audit tables, keeps the records, and is idempotent', async () => {
    await initSchema(pool);
    // What a version-1 database looks like: no checkpoint or audit key tables, one record.
    await pool.query('DROP TABLE bulkhead_audit_checkpoints; DROP TABLE bulkhead_audit_keys; DROP TABLE bulkhead_argument_keys; UPDATE bulkhead_schema SET version = 1');
    await pool.query("INSERT INTO bulkhead_audit (tenant, seq, hash, record) VALUES ('acme', 1, 'h', '{}')");
    await expect(assertSchema(pool)).rejects.toThrow(new RegExp(`version 1, older than this build needs \\(${SCHEMA_VERSION}\\): run \`bulkhead state init`));

    expect(await initSchema(pool)).toEqual({ version: SCHEMA_VERSION, created: false });
    await assertSchema(pool);
    const tables = await pool.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename IN ('bulkhead_audit_checkpoints', 'bulkhead_audit_keys')");
    expect(tables.rows[0].n).toBe(2);
    expect((await pool.query('SELECT count(*)::int AS n FROM bulkhead_audit')).rows[0].n).toBe(1);
    await pool.query("INSERT INTO bulkhead_audit_checkpoints (tenant, seq, checkpoint) VALUES ('acme', 1, '{}')");
    await expect(pool.query("DELETE FROM bulkhead_audit_checkpoints WHERE tenant = 'acme'")).rejects.toThrow(/append-only/);
    await expect(pool.query("UPDATE bulkhead_audit_checkpoints SET checkpoint = '[]'")).rejects.toThrow(/append-only/);
    expect(await initSchema(pool)).toEqual({ version: SCHEMA_VERSION, created: false });
  });

  test('replicas refuse version 3; state init adds the argument key table (a tombstone holds no key, a key no tombstone)', async () => {
    await initSchema(pool);
    await pool.query('DROP TABLE bulkhead_argument_keys; UPDATE bulkhead_schema SET version = 3');
    await expect(assertSchema(pool)).rejects.toThrow(new RegExp(`version 3, older than this build needs \\(${SCHEMA_VERSION}\\)`));
    expect(await initSchema(pool)).toEqual({ version: SCHEMA_VERSION, created: false });
    await assertSchema(pool);
    await pool.query("INSERT INTO bulkhead_argument_keys (tenant, kek, wrapped) VALUES ('acme', 'master', 'v1.x.y.z')");
    await pool.query("INSERT INTO bulkhead_argument_keys (tenant, shredded_at) VALUES ('globex', now())");
    await expect(pool.query("INSERT INTO bulkhead_argument_keys (tenant, kek, wrapped, shredded_at) VALUES ('initech', 'master', 'v1.x.y.z', now())")).rejects.toThrow(/check constraint/);
    await expect(pool.query("INSERT INTO bulkhead_argument_keys (tenant) VALUES ('initech')")).rejects.toThrow(/check constraint/);
  });

  test('replicas refuse version 4; state init replaces the append-only trigger with one that lets only the purge DELETE through', async () => {
    await initSchema(pool);
    // What version 4 had: a trigger that refuses every UPDATE and DELETE.
    await pool.query(`CREATE OR REPLACE FUNCTION bulkhead_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'bulkhead_audit is append-only'; END $$; UPDATE bulkhead_schema SET version = 4`);
    await expect(assertSchema(pool)).rejects.toThrow(new RegExp(`version 4, older than this build needs \\(${SCHEMA_VERSION}\\)`));
    for (const tenant of ['purged', 'kept']) {
      await pool.query('INSERT INTO bulkhead_audit (tenant, seq, hash, record) VALUES ($1, 1, $2, $3)', [tenant, 'h', '{}']);
      await pool.query('INSERT INTO bulkhead_audit_checkpoints (tenant, seq, checkpoint) VALUES ($1, 1, $2)', [tenant, '{}']);
    }
    await expect(purgeAuditRows(pool, 'purged')).rejects.toThrow(/append-only/);
    expect(await initSchema(pool)).toEqual({ version: SCHEMA_VERSION, created: false });
    await assertSchema(pool);

    // An ordinary DELETE, a DELETE under the flag of another tenant, and any UPDATE are still refused.
    await expect(pool.query("DELETE FROM bulkhead_audit WHERE tenant = 'purged'")).rejects.toThrow(/append-only/);
    await expect(pool.query("DELETE FROM bulkhead_audit_checkpoints WHERE tenant = 'kept'")).rejects.toThrow(/append-only/);
    await expect(
      inTransaction(pool, async (client) => {
        await client.query("SELECT set_config('bulkhead.audit_purge', 'purged', true)");
        await client.query("DELETE FROM bulkhead_audit WHERE tenant IN ('purged', 'kept')");
      }),
    ).rejects.toThrow(/append-only/);
    await expect(
      inTransaction(pool, async (client) => {
        await client.query("SELECT set_config('bulkhead.audit_purge', 'purged', true)");
        await client.query("UPDATE bulkhead_audit SET record = '[]' WHERE tenant = 'purged'");
      }),
    ).rejects.toThrow(/append-only/);
    // The flag is the transaction's: set once on a pooled connection, it does not outlive it.
    await expect(pool.query("DELETE FROM bulkhead_audit WHERE tenant = 'purged'")).rejects.toThrow(/append-only/);

    await purgeAuditRows(pool, 'purged');
    await purgeAuditRows(pool, 'purged'); // idempotent
    const left = await pool.query<{ tenant: string }>("SELECT tenant FROM bulkhead_audit WHERE tenant <> 'acme' UNION ALL SELECT tenant FROM bulkhead_audit_checkpoints WHERE tenant <> 'acme'");
    expect(left.rows.map((r) => r.tenant)).toEqual(['kept', 'kept']);
  });
});
