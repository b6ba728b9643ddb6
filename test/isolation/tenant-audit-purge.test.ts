import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Pool } from 'pg';
import { createLocalSecretStore } from '../../adapters/local';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { createScratchDatabase } from '../../bench/scratch-state';
import { sha256Hex } from '../../src/crypto/hash';
import { createPgPool } from '../../src/state/postgres/pool';
import { initSchema } from '../../src/state/postgres/schema';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { callId } from '../support/isolation-assertions';
import { filesUnder, tokenFor } from '../support/tenant-data';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * `tenant delete --purge-audit` through the API and the CLI, on the embedded default (files) and scaled
 * out (PostgreSQL): refused export_required without an export and after a record the export does not
 * hold; refused for the security stream, a path-like id and without operator auth; allowed after an
 * export, it leaves nothing of acme's audit in any file or row, while acme2 (whose id extends acme's)
 * keeps its stream, which still verifies; the security stream verifies and `audit verify` of acme lists
 * the signed purge with the export's digest. Scaled out, a plain DELETE of the audit rows stays refused.
 */
jest.setTimeout(120_000);
const random = () => randomBytes(12).toString('base64url');
const acme2Secret = random();

interface Deployment {
  h: Harness;
  /** Everything stored of acme's and acme2's audit: [where, content]. */
  auditStorage(): Promise<Array<[string, string]>>;
  pool?: Pool;
  cleanup(): Promise<void>;
}

async function auditFiles(dataDir: string): Promise<Array<[string, string]>> {
  const files = (await filesUnder(dataDir)).filter((f) => /audit/.test(relative(dataDir, f)));
  return Promise.all(files.map(async (f) => [relative(dataDir, f), await readFile(f, 'utf8')] as [string, string]));
}

function suite(name: string, setup: (overrides: (p: any) => void) => Promise<Deployment>): void {
  let d: Deployment;
  let h: Harness;
  const op = () => h.operatorToken;
  const call = async (token: string, tenant: string) => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${tenant}/x` }, call_id: callId(tenant) });

  describe(`tenant delete --purge-audit (${name})`, () => {
    let acmeToken: string;
    let acme2Token: string;
    let exported: any;

    beforeAll(async () => {
      [d] = await Promise.all([
        setup((p) => {
          p.broker.audit = { checkpoint_every: 1000, checkpoint_interval: '1h' };
          const copy = structuredClone(p.tenants.acme);
          copy.principals = { 'acme2-agent': { secret_sha256: sha256Hex(acme2Secret), tools: ['query_crm', 'export_report', 'send_email'] } };
          copy.tools.query_crm.resource.prefix = 'acme2/';
          p.tenants.acme2 = copy;
        }),
        ensureBuiltCli(),
      ]);
      h = d.h;
      await createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }).set('acme2', 'crm', `acme2-upstream-${random()}`);
      acmeToken = await tokenFor(h, 'acme-agent', h.clientSecrets['acme-agent']!);
      acme2Token = await tokenFor(h, 'acme2-agent', acme2Secret);
      expect((await call(acmeToken, 'acme')).status).toBe(200);
      expect((await call(acme2Token, 'acme2')).status).toBe(200);
    });
    afterAll(async () => {
      await h?.close();
      await d?.cleanup();
    });

    it('is refused export_required without an export, and deletes nothing', async () => {
      const refused = await h.post('/v1/tenants/acme/delete', { confirm: 'acme', purge_audit: true }, op());
      expect(refused).toMatchObject({ status: 409, body: { error: 'export_required' } });
      expect((await h.get('/v1/tenants/acme', op())).body.revoked).toBe(false);
      const cli = await runCli(['tenant', 'delete', 'acme', '--yes', '--purge-audit', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toContain('export_required');
    });

    it('is refused when a record came after the export', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'bulkhead-purge-export-'));
      try {
        const cli = await runCli(['tenant', 'export', 'acme', '--out', dir, '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
        expect(cli).toMatchObject({ code: 0 });
        expect(cli.stdout).toMatch(/audit_sha256 [0-9a-f]{64}/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      expect((await call(acmeToken, 'acme')).status).toBe(200);
      const refused = await h.post('/v1/tenants/acme/delete', { confirm: 'acme', purge_audit: true }, op());
      expect(refused).toMatchObject({ status: 409, body: { error: 'export_required', message: expect.stringContaining('records after its last export') } });
    });

    it('refuses what an attacker would try: no operator auth, the security stream, a path-like id', async () => {
      expect((await h.post('/v1/tenants/acme/delete', { confirm: 'acme', purge_audit: true })).status).toBe(401);
      expect((await h.post('/v1/tenants/acme/delete', { confirm: 'acme', purge_audit: true }, h.serverKeys['crm-mcp'])).status).toBe(401);
      for (const id of ['_security', '..%2Facme', '..%2F_security', 'acme%2F..%2Facme2', '%2Ftmp%2Facme']) {
        const answer = await h.post(`/v1/tenants/${id}/delete`, { confirm: decodeURIComponent(id), purge_audit: true }, op());
        expect([400, 404]).toContain(answer.status);
      }
      expect((await h.get('/v1/audit/verify?tenant=_security', op())).body.ok).toBe(true);
      expect((await h.get('/v1/tenants/acme', op())).body.revoked).toBe(false);
    });

    it('after a fresh export: deletes, purges, and reports each step (CLI --json)', async () => {
      exported = (await h.post('/v1/tenants/acme/export', {}, op())).body;
      expect(exported.audit_sha256).toMatch(/^[0-9a-f]{64}$/);
      const cli = await runCli(['tenant', 'delete', 'acme', '--yes', '--purge-audit', '--json', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
      expect(cli).toMatchObject({ code: 0, stderr: '' });
      const result = JSON.parse(cli.stdout);
      expect(result.steps.map((s: any) => s.step)).toEqual(['revoke', 'shred_keys', 'sessions', 'approvals', 'quotas', 'budgets', 'tombstone', 'purge_audit']);
      expect(result.purge).toMatchObject({ export_sha256: exported.audit_sha256, purged: { seq: result.tombstone.seq, hash: result.tombstone.hash }, record: { stream: '_security' } });
    });

    it("leaves nothing of acme's audit in files or rows; acme2's stream is whole and verifies", async () => {
      const stored = await d.auditStorage();
      const acme = stored.filter(([where, text]) => /(^|\/| )acme(\.jsonl)?$/.test(where) || /(^|\n)\{"tenant":"acme"[,}]/.test(text));
      // acme is named in the security stream only inside the signed purge record it keeps.
      expect(stored.filter(([, text]) => text.includes('"acme"')).every(([, text]) => text.split('\n').filter((l) => l.includes('"acme"')).every((l) => l.includes('"type":"tenant_purge"') || l.includes('tenant_purge')))).toBe(true);
      expect(acme).toEqual([]);
      expect(stored.some(([, text]) => text.includes('"tenant":"acme2"'))).toBe(true);
      const acme2 = (await h.get('/v1/audit/verify?tenant=acme2', op())).body;
      expect(acme2).toMatchObject({ ok: true });
      expect(acme2.events).toBeGreaterThan(0);
      expect((await call(acme2Token, 'acme2')).status).toBe(200);
    });

    it('the purge record verifies, and audit verify of acme names it', async () => {
      expect((await h.get('/v1/audit/verify?tenant=_security', op())).body).toMatchObject({ ok: true });
      const verify = (await h.get('/v1/audit/verify?tenant=acme', op())).body;
      expect(verify).toMatchObject({ ok: true, purged: [{ export_sha256: exported.audit_sha256, operator: expect.any(String) }] });
      // Run again: the stream is gone (or new); a second purge needs a new export of what is there now.
      const again = await h.post('/v1/tenants/acme/delete', { confirm: 'acme', purge_audit: true }, op());
      expect([200, 409]).toContain(again.status);
    });

    if (name !== 'embedded') {
      it('a plain DELETE of audit rows is still refused', async () => {
        await expect(d.pool!.query("DELETE FROM bulkhead_audit WHERE tenant = 'acme2'")).rejects.toThrow(/append-only/);
        await expect(d.pool!.query("UPDATE bulkhead_audit SET record = '{}' WHERE tenant = 'acme2'")).rejects.toThrow(/append-only/);
        await expect(d.pool!.query("DELETE FROM bulkhead_audit_checkpoints WHERE tenant = 'acme2'")).rejects.toThrow(/append-only/);
      });
    }
  });
}

suite('embedded', async (overrides) => {
  const h = await startHarness({ overrides });
  return { h, auditStorage: () => auditFiles(h.dataDir), cleanup: async () => undefined };
});

describeWithUpstream(['postgres', 'redis'], 'scaled out', () => {
  suite('PostgreSQL', async (overrides) => {
    const env = upstreamEnv();
    const db = await createScratchDatabase(env.DATABASE_URL, 'audit_purge');
    const pool: Pool = createPgPool({ url: db.url, timeoutMs: 5000 });
    await initSchema(pool);
    const h = await startHarness({ overrides: (p) => ((p.broker.state = { redis_url: env.REDIS_URL, postgres_url: db.url, redis_prefix: `purge-${random()}` }), overrides(p)) });
    async function auditStorage(): Promise<Array<[string, string]>> {
      const out = await auditFiles(h.dataDir);
      for (const table of ['bulkhead_audit', 'bulkhead_audit_heads', 'bulkhead_audit_checkpoints']) {
        const rows = await pool.query<{ tenant: string; row: string }>(`SELECT tenant, row_to_json(t)::text AS row FROM ${table} t`);
        for (const { tenant, row } of rows.rows) out.push([`postgres ${table} ${tenant}`, row]);
      }
      return out;
    }
    return {
      h,
      pool,
      auditStorage,
      cleanup: async () => {
        await pool.end();
        await db.drop();
      },
    };
  });
});
