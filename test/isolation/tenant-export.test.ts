import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSecretStore } from '../../adapters/local';
import { verifyBundle } from '../../src/audit/bundle';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { sha256Hex } from '../../src/crypto/hash';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { auditEvents } from '../support/isolation-assertions';
import { seedTenantData, type TenantData } from '../support/tenant-data';

/**
 * Tenant export (DSAR) holds exactly one tenant's data. "acme" is exported next to lookalikes whose ids
 * extend its own ("acme2", "acme-eu"), a tenant whose principal is named like acme's ("globex" has
 * "acme-agent2"), and each of them holds secrets, sessions, a quarantine, approvals, budget use and
 * audit records. Every value of theirs (ids, secret names and values, session and approval ids, call
 * ids, request ids, record hashes) is searched for in the export, and none may be there.
 */

const random = () => randomBytes(12).toString('base64url');
const LOOKALIKES = ['acme2', 'acme-eu'] as const;
const secretOf: Record<string, string> = {};
for (const t of LOOKALIKES) secretOf[`${t}-agent`] = random();
secretOf['acme-agent2'] = random();

let h: Harness;
let work: string;
/** Every value that belongs to a tenant other than acme. */
const foreign: string[] = [];
let acme: TenantData;

function tenantLike(source: any, id: string): any {
  const copy = structuredClone(source);
  copy.principals = { [`${id}-agent`]: { secret_sha256: sha256Hex(secretOf[`${id}-agent`]!), tools: ['query_crm', 'export_report', 'send_email'] } };
  copy.tools.query_crm.resource.prefix = `${id}/`;
  return copy;
}

beforeAll(async () => {
  [h] = await Promise.all([
    startHarness({
      overrides: (p) => {
        p.broker.audit = { checkpoint_every: 3, checkpoint_interval: '1h' };
        for (const t of ['acme', 'globex']) {
          p.tenants[t].budgets = { hourly: 1000 };
          p.tenants[t].tools.query_crm.cost = 2;
        }
        for (const t of LOOKALIKES) p.tenants[t] = tenantLike(p.tenants.acme, t);
        p.tenants.globex.principals['acme-agent2'] = { secret_sha256: sha256Hex(secretOf['acme-agent2']!), tools: ['query_crm', 'export_report', 'send_email'] };
      },
    }),
    ensureBuiltCli(),
  ]);
  work = await mkdtemp(join(tmpdir(), 'bulkhead-tenant-export-'));
  const store = createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) });
  for (const t of LOOKALIKES) await store.set(t, 'crm', `${t}-upstream-${random()}`);

  acme = await seedTenantData(h, 'acme', 'acme-agent', h.clientSecrets['acme-agent']!);
  for (const t of LOOKALIKES) foreign.push(...(await seedTenantData(h, t, `${t}-agent`, secretOf[`${t}-agent`]!)).values);
  foreign.push(...(await seedTenantData(h, 'globex', 'acme-agent2', secretOf['acme-agent2']!)).values);
  // Every record of the others' streams, and their upstream values, are theirs too.
  for (const t of [...LOOKALIKES, 'globex']) {
    for (const r of await auditEvents(h, t)) foreign.push(r.hash);
  }
  foreign.push(h.upstream.globex!, h.upstream.initech!, ...LOOKALIKES, 'acme-agent2', 'globex', 'initech');
}, 180_000);

afterAll(async () => {
  await h?.close();
  await rm(work, { recursive: true, force: true });
});

const op = () => h.operatorToken;
const published = async () => (await h.get('/.well-known/bulkhead-audit-keys.json')).body;

/** The lookalike ids contain "acme": they are searched for as JSON strings or word-bounded, not as substrings. */
function foreignIn(text: string): string[] {
  return foreign.filter((value) => {
    if (value === 'acme2' || value === 'acme-eu' || value === 'acme-agent2') return new RegExp(`(^|[^A-Za-z0-9_.-])${value.replace('.', '\\.')}([^A-Za-z0-9_.-]|$)`).test(text) || text.includes(`${value}/`);
    return text.includes(value);
  });
}

describe('tenant export', () => {
  it('holds every part of the tenant: policy, secret names and values, sessions, quarantine, approvals, quota, budget, a verifying audit bundle', async () => {
    const answer = await h.post('/v1/tenants/acme/export', { include_secrets: true }, op());
    expect(answer.status).toBe(200);
    const e = answer.body;
    expect(e.format).toBe('bulkhead-tenant-export/1');
    expect(e.tenant).toBe('acme');
    expect(Object.keys(e.policy.tenant.principals).sort()).toEqual(['acme-agent', 'acme-reader']);
    expect(e.policy.tenant.principals['acme-agent'].secret_sha256).toBe('(redacted)');
    expect(JSON.stringify(e)).not.toContain(sha256Hex(h.clientSecrets['acme-agent']!));
    expect(e.secrets.names).toEqual(expect.arrayContaining(['crm', acme.secretName]));
    expect(e.secrets.values.crm).toBe(h.upstream.acme);
    expect(e.secrets.values[acme.secretName]).toBe(acme.secretValue);
    expect(e.sessions.live.map((s: any) => s.session)).toEqual(expect.arrayContaining([acme.session, acme.quarantined]));
    expect(e.sessions.quarantined).toEqual([acme.quarantined]);
    expect(e.approvals.map((a: any) => a.id)).toEqual([acme.approval]);
    expect(e.approvals[0]).toMatchObject({ principal: 'acme-agent', tool: 'send_email', status: 'pending', arguments: { to: 'acme@example.test' } });
    expect(e.approvals[0]).not.toHaveProperty('arguments_unavailable');
    expect(e.budget.tenant.hourly).toBe(6); // three query_crm calls at cost 2
    expect(e.budget.principals['acme-agent'].hourly).toBe(0); // no per-principal budget: never counted
    expect(e.revocations).toEqual({ tenant_revoked: false, history: [] });
    expect(e.quota).toHaveProperty('calls_last_minute');
    const verdict = verifyBundle(e.audit, await published());
    expect(verdict).toMatchObject({ ok: true, tenant: 'acme' });
    // The bundle carries the record of its own export, and it says values were included.
    expect(e.audit.records.at(-1)).toMatchObject({ type: 'tenant_export', operator: 'ops', detail: 'tenant export with secret values' });
  });

  it('holds nothing of any other tenant: lookalike ids, a lookalike principal, their sessions, approvals, secrets, calls and records', async () => {
    const e = (await h.post('/v1/tenants/acme/export', { include_secrets: true }, op())).body;
    const text = JSON.stringify(e);
    expect(foreign.length).toBeGreaterThan(40);
    expect(foreignIn(text)).toEqual([]);
    // The scan can see a foreign value: the same scan over a lookalike's own export finds its values.
    const other = JSON.stringify((await h.post('/v1/tenants/acme2/export', { include_secrets: true }, op())).body);
    expect(foreignIn(other).length).toBeGreaterThan(5);
    expect(other).not.toContain(acme.secretValue);
    expect(other).not.toContain(acme.approval);
    expect(other).not.toContain(h.upstream.acme);
  });

  it('leaves secret values out unless asked for, and records which it was', async () => {
    const e = (await h.post('/v1/tenants/acme/export', {}, op())).body;
    expect(e.secrets.values).toBeUndefined();
    expect(JSON.stringify(e)).not.toContain(h.upstream.acme);
    expect(JSON.stringify(e)).not.toContain(acme.secretValue);
    const exports = (await auditEvents(h, 'acme')).filter((r) => r.type === 'tenant_export' && r.status === undefined);
    expect(exports.map((r) => r.detail)).toEqual(['tenant export with secret values', 'tenant export with secret values', 'tenant export (secret names only)']);
    // Each export is followed by the record of what it took away: the bundle's digest and last seq.
    const exported = (await auditEvents(h, 'acme')).filter((r) => r.type === 'tenant_export' && r.status === 'exported');
    expect(exported).toHaveLength(3);
    expect(exported.at(-1)).toMatchObject({ bundle_sha256: e.audit_sha256, records: e.audit.manifest.records.last_seq });
    expect(exported.at(-1).seq).toBe(e.audit.manifest.records.last_seq + 1);
  });

  it('refuses an unknown tenant, a bad body and a caller without the operator token', async () => {
    expect((await h.post('/v1/tenants/acme3/export', {}, op())).body.error).toBe('not_found');
    expect((await h.post('/v1/tenants/acme/export', { include_secrets: 'yes' }, op())).body.error).toBe('bad_request');
    expect((await h.post('/v1/tenants/acme/export', { tenant: 'acme2' }, op())).body.error).toBe('bad_request');
    const noAuth = await h.post('/v1/tenants/acme/export', { include_secrets: true });
    expect(noAuth.status).toBe(401);
    expect(JSON.stringify(noAuth.body)).not.toContain(h.upstream.acme);
    expect((await h.post('/v1/tenants/acme/export', {}, h.serverKeys['crm-mcp'])).status).toBe(401);
  });

  it('bulkhead tenant export writes tenant.json and a bundle that `audit verify --bundle` accepts; secrets.json only with --include-secrets (0600)', async () => {
    const env = { BULKHEAD_OPERATOR_TOKEN: op() };
    const plain = join(work, 'plain');
    const run = await runCli(['tenant', 'export', 'acme', '--out', plain, '--url', h.url], env);
    expect(run).toMatchObject({ code: 0 });
    expect(run.stdout).toContain('tenant acme');
    expect((await readdir(plain)).sort()).toEqual(['audit-bundle.json', 'tenant.json']);
    const pinned = join(work, 'published.json');
    await writeFile(pinned, JSON.stringify(await published()));
    const verify = await runCli(['audit', 'verify', '--bundle', join(plain, 'audit-bundle.json'), '--keys', pinned]);
    expect(verify).toMatchObject({ code: 0 });
    const files = (await readdir(plain)).map((f) => join(plain, f));
    for (const f of files) expect(foreignIn(await readFile(f, 'utf8'))).toEqual([]);

    const full = join(work, 'full');
    expect((await runCli(['tenant', 'export', 'acme', '--out', full, '--include-secrets', '--url', h.url], env)).code).toBe(0);
    const secrets = JSON.parse(await readFile(join(full, 'secrets.json'), 'utf8'));
    expect(secrets.crm).toBe(h.upstream.acme);
    expect((await stat(join(full, 'secrets.json'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(full, 'tenant.json'), 'utf8')).not.toContain(h.upstream.acme);
  });
});
