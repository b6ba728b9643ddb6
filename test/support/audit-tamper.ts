import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool } from 'pg';
import type { AuditRecord } from '../../src/audit/audit-log';
import { buildRecord } from '../../src/audit/chain';
import { CHECKPOINT_DIR } from '../../src/audit/file-checkpoint-store';

/**
 * What someone with write access to the audit storage can do, on either backend: read and rewrite a
 * tenant's records (head included, as a careful attacker would), its checkpoints, or drop the stream.
 * PostgreSQL's append-only triggers are switched off for the attacker's session, as a superuser can.
 */
export interface AuditStorage {
  records(tenant: string): Promise<AuditRecord[]>;
  writeRecords(tenant: string, records: AuditRecord[]): Promise<void>;
  checkpoints(tenant: string): Promise<Array<Record<string, unknown>>>;
  writeCheckpoints(tenant: string, checkpoints: Array<Record<string, unknown>>): Promise<void>;
  dropStream(tenant: string): Promise<void>;
}

const jsonl = (items: unknown[]) => items.map((i) => JSON.stringify(i) + '\n').join('');
const parseLines = (text: string) => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));

export function fileAuditStorage(dataDir: string): AuditStorage {
  const stream = (t: string) => join(dataDir, 'audit', `${t}.jsonl`);
  const checkpoints = (t: string) => join(dataDir, CHECKPOINT_DIR, `${t}.jsonl`);
  return {
    records: async (t) => parseLines(await readFile(stream(t), 'utf8')),
    writeRecords: (t, records) => writeFile(stream(t), jsonl(records)),
    checkpoints: async (t) => parseLines(await readFile(checkpoints(t), 'utf8')),
    writeCheckpoints: (t, list) => writeFile(checkpoints(t), jsonl(list)),
    dropStream: (t) => rm(stream(t)),
  };
}

export function postgresAuditStorage(pool: Pool): AuditStorage {
  async function asAttacker(run: (q: (sql: string, params?: unknown[]) => Promise<{ rows: any[] }>) => Promise<void>): Promise<void> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query("SET LOCAL session_replication_role = 'replica'");
      await run((sql, params) => client.query(sql, params));
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  }
  return {
    records: async (t) => (await pool.query('SELECT record FROM bulkhead_audit WHERE tenant = $1 ORDER BY seq', [t])).rows.map((r) => JSON.parse(r.record)),
    writeRecords: (t, records) =>
      asAttacker(async (q) => {
        await q('DELETE FROM bulkhead_audit WHERE tenant = $1', [t]);
        // The row key is the position; what the record claims is inside it.
        for (const [i, r] of records.entries()) await q('INSERT INTO bulkhead_audit (tenant, seq, hash, record) VALUES ($1, $2, $3, $4)', [t, i + 1, r.hash, JSON.stringify(r)]);
        const last = records[records.length - 1]!;
        await q('UPDATE bulkhead_audit_heads SET seq = $2, hash = $3 WHERE tenant = $1', [t, records.length, last.hash]);
      }),
    checkpoints: async (t) => (await pool.query('SELECT checkpoint FROM bulkhead_audit_checkpoints WHERE tenant = $1 ORDER BY seq', [t])).rows.map((r) => JSON.parse(r.checkpoint)),
    writeCheckpoints: (t, list) =>
      asAttacker(async (q) => {
        await q('DELETE FROM bulkhead_audit_checkpoints WHERE tenant = $1', [t]);
        for (const [i, c] of list.entries()) await q('INSERT INTO bulkhead_audit_checkpoints (tenant, seq, checkpoint) VALUES ($1, $2, $3)', [t, 1_000_000 + i, JSON.stringify(c)]);
      }),
    dropStream: (t) =>
      asAttacker(async (q) => {
        await q('DELETE FROM bulkhead_audit WHERE tenant = $1', [t]);
        await q('DELETE FROM bulkhead_audit_heads WHERE tenant = $1', [t]);
      }),
  };
}

/** Rewrites records from `fromSeq` on with a different tool, re-hashing the chain so it verifies on its own. */
export function recompute(records: AuditRecord[], fromSeq: number): AuditRecord[] {
  const out = records.slice(0, fromSeq - 1);
  for (const original of records.slice(fromSeq - 1)) {
    const { tenant, seq: _seq, ts, prev_hash: _prev, hash: _hash, ...event } = original;
    const previous = out[out.length - 1];
    out.push(buildRecord(tenant, previous ? { seq: previous.seq, hash: previous.hash } : { seq: 0, hash: '0'.repeat(64) }, ts, { ...event, tool: 'send_email' }));
  }
  return out;
}
