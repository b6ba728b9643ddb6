import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { createLocalSecretStore } from '../../adapters/local';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { sha256Hex } from '../../src/crypto/hash';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { auditEvents, callId, claimsOf } from '../support/isolation-assertions';

/**
 * Tenant delete on the embedded default. "acme" is deleted next to "acme2", whose id extends it. After
 * the delete: acme's tokens are dead (tenant_revoked), its secrets, sessions, quarantines, approvals,
 * quota and budget counters are gone from memory and from every file of the data dir, except the
 * audit stream (whose last record is the tombstone, signed by a checkpoint), the checkpoints and the
 * tenant revocation; acme2 keeps every one of its own and keeps working. Run again, it succeeds.
 */

const random = () => randomBytes(12).toString('base64url');
const acme2Secret = random();
let h: Harness;
/** Values only acme holds, searched for in every file after the delete. */
const acmeValues: string[] = [];
const acme2Values: string[] = [];

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(path);
  }
  return out;
}

async function tokenFor(principal: string, secret: string): Promise<string> {
  const answer = await h.tokenRequest({ grant_type: 'client_credentials', client_id: principal, client_secret: secret, audience: 'crm-mcp' });
  expect(answer.status).toBe(200);
  return answer.body.access_token as string;
}

/** Calls (quota, budget, audit), an approval, a quarantined session and a second local secret. */
async function useTenant(tenant: string, principal: string, secret: string, values: string[]): Promise<string> {
  const token = await tokenFor(principal, secret);
  values.push(claimsOf(token).sid);
  const allow = await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${tenant}/r` }, call_id: callId(`${tenant}-q`) });
  expect(allow.status).toBe(200);
  const ask = await h.authorize('crm-mcp', { token, tool: 'send_email', arguments: { to: 'x@example.test' }, call_id: callId(`${tenant}-mail`) });
  expect(ask.body.reason).toBe('approval_required');
  values.push(ask.body.approval_id);
  const other = await tokenFor(principal, secret);
  const exportId = callId(`${tenant}-export`);
  expect((await h.authorize('crm-mcp', { token: other, tool: 'export_report', arguments: {}, call_id: exportId })).status).toBe(200);
  expect((await h.post('/v1/complete', { call_id: exportId, status: 'success', records: 5000 }, h.serverKeys['crm-mcp'])).status).toBe(200);
  values.push(claimsOf(other).sid);
  // A call left open (its quota slot held, its call record live) when the delete comes.
  const open = callId(`${tenant}-open`);
  expect((await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${tenant}/open` }, call_id: open })).status).toBe(200);
  values.push(open);
  const name = `${tenant}-only-${random()}`;
  const value = `${tenant}-value-${random()}`;
  await createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }).set(tenant, name, value);
  values.push(name, value);
  return token;
}

let acmeToken: string;
let acme2Token: string;

beforeAll(async () => {
  [h] = await Promise.all([
    startHarness({
      overrides: (p) => {
        p.broker.audit = { checkpoint_every: 1000, checkpoint_interval: '1h' };
        p.tenants.acme.budgets = { hourly: 1000, daily: 5000 };
        p.tenants.acme.tools.query_crm.cost = 3;
        const copy = structuredClone(p.tenants.acme);
        copy.principals = { 'acme2-agent': { secret_sha256: sha256Hex(acme2Secret), tools: ['query_crm', 'export_report', 'send_email'] } };
        copy.tools.query_crm.resource.prefix = 'acme2/';
        p.tenants.acme2 = copy;
      },
    }),
    ensureBuiltCli(),
  ]);
  await createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }).set('acme2', 'crm', `acme2-upstream-${random()}`);
  acmeToken = await useTenant('acme', 'acme-agent', h.clientSecrets['acme-agent']!, acmeValues);
  acme2Token = await useTenant('acme2', 'acme2-agent', acme2Secret, acme2Values);
  acmeValues.push(h.upstream.acme!);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

const op = () => h.operatorToken;

describe('tenant delete (embedded)', () => {
  let first: any;

  it('without confirmation, or for an unknown tenant, deletes nothing', async () => {
    expect((await h.post('/v1/tenants/acme/delete', {}, op())).body.error).toBe('bad_request');
    expect((await h.post('/v1/tenants/acme/delete', { confirm: 'acme2' }, op())).body.error).toBe('bad_request');
    expect((await h.post('/v1/tenants/acme3/delete', { confirm: 'acme3' }, op())).body.error).toBe('not_found');
    expect((await h.post('/v1/tenants/acme/delete', { confirm: 'acme' })).status).toBe(401);
    const cli = await runCli(['tenant', 'delete', 'acme', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('Add --yes');
    expect((await h.get('/v1/tenants/acme', op())).body.revoked).toBe(false);
    expect((await h.authorize('crm-mcp', { token: acmeToken, tool: 'query_crm', arguments: { path: 'acme/still' }, call_id: callId('still') })).status).toBe(200);
  });

  it('runs every step in order and reports each (CLI, --json)', async () => {
    const cli = await runCli(['tenant', 'delete', 'acme', '--yes', '--json', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
    expect(cli).toMatchObject({ code: 0 });
    first = JSON.parse(cli.stdout);
    expect(first.steps.map((s: any) => [s.step, s.status])).toEqual(['revoke', 'shred_keys', 'sessions', 'approvals', 'quotas', 'budgets', 'tombstone'].map((s) => [s, 'done']));
    expect(first.steps[1].detail).toContain('2 local secret(s) deleted');
    expect(first.resumed).toBe(false);
  });

  it("kills the tenant's tokens; the lookalike keeps working", async () => {
    const denied = await h.authorize('crm-mcp', { token: acmeToken, tool: 'query_crm', arguments: { path: 'acme/after' }, call_id: callId('after') });
    expect(denied.body.reason).toBe('tenant_revoked');
    const fresh = await h.tokenRequest({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'], audience: 'crm-mcp' });
    expect(fresh.body).toMatchObject({ error: 'invalid_grant' });
    const allowed = await h.authorize('crm-mcp', { token: acme2Token, tool: 'query_crm', arguments: { path: 'acme2/after' }, call_id: callId('acme2-after') });
    expect(allowed.status).toBe(200);
    const status = (await h.get('/v1/tenants/acme2', op())).body;
    expect(status).toMatchObject({ revoked: false, live_sessions: 2 });
    const export2 = (await h.post('/v1/tenants/acme2/export', { include_secrets: true }, op())).body;
    expect(export2.approvals).toHaveLength(1);
    expect(export2.sessions.quarantined).toHaveLength(1);
    expect(export2.secrets.names).toHaveLength(2);
  });

  it('leaves nothing of the tenant in memory: the export of what is left is empty', async () => {
    const e = (await h.post('/v1/tenants/acme/export', { include_secrets: true }, op())).body;
    expect(e.secrets).toEqual({ names: [], values: {} });
    expect(e.sessions).toEqual({ live: [], quarantined: [] });
    expect(e.approvals).toEqual([]);
    expect(e.quota).toEqual({ calls_last_minute: 0, in_flight: 0 });
    expect(e.budget.tenant).toEqual({ hourly: 0, daily: 0 });
    expect(e.revocations.tenant_revoked).toBe(true);
  });

  it('leaves nothing of the tenant in any file but its audit stream, the checkpoints and the revocation', async () => {
    const kept: string[] = [];
    for (const file of await filesUnder(h.dataDir)) {
      const name = relative(h.dataDir, file);
      const text = await readFile(file, 'utf8').catch(() => '');
      const found = acmeValues.filter((v) => text.includes(v) || name.includes(v));
      const namesTenant = /(^|[^A-Za-z0-9_.-])acme([^A-Za-z0-9_.-]|$)/.test(name) || /"acme"|"t:acme"|"p:acme\/|principal:acme\//.test(text);
      if (found.length === 0 && !namesTenant) continue;
      kept.push(name);
    }
    // What remains names acme only in the retained audit: the stream, its checkpoints, and the revocation.
    for (const name of kept) expect(name).toMatch(/^(audit\/acme\.|audit-checkpoints\/acme\.|revocations\.jsonl$|broker\.log$)/);
    // The lookalike's data is all still on disk.
    const all = (await Promise.all((await filesUnder(h.dataDir)).map((f) => readFile(f, 'utf8').catch(() => '')))).join('\n');
    expect(all).toContain(acme2Values[2]); // acme2's quarantined session, in quarantine.jsonl
    expect(all).toContain(acme2Values[4]); // acme2's own secret's name, in its secrets file
    expect((await filesUnder(h.dataDir)).map((f) => relative(h.dataDir, f))).toEqual(expect.arrayContaining(['secrets/acme2.key', 'secrets/acme2.json']));
  });

  it("keeps the audit stream: it verifies, and its last record is the tombstone, signed by a checkpoint", async () => {
    const events = await auditEvents(h, 'acme');
    const tombstone = events.find((r) => r.seq === first.tombstone.seq);
    // The last record of the delete (the export after it, above, comes later).
    expect(events.filter((r) => r.type === 'tenant_delete').at(-1)).toEqual(tombstone);
    expect(tombstone).toMatchObject({ type: 'tenant_delete', status: 'deleted', seq: first.tombstone.seq, hash: first.tombstone.hash });
    expect(events.filter((r) => r.type === 'tenant_delete').map((r) => r.status)).toEqual(['started', ...Array(6).fill('step_done'), 'deleted']);
    const verify = (await h.get('/v1/audit/verify?tenant=acme', op())).body;
    expect(verify.ok).toBe(true);
    const checkpoints = (await h.get('/v1/audit/checkpoints?tenant=acme', op())).body.checkpoints;
    expect(checkpoints.some((c: any) => c.seq === first.tombstone.seq && c.hash === first.tombstone.hash)).toBe(true);
  });

  it('run again, succeeds and finds nothing: a new run, every step again, a new tombstone (text report)', async () => {
    const again = await runCli(['tenant', 'delete', 'acme', '--yes', '--url', h.url], { BULKHEAD_OPERATOR_TOKEN: op() });
    expect(again).toMatchObject({ code: 0 });
    expect(again.stdout).toMatch(/^revoke +done +tenant revoked; 0 upstream lease/m);
    expect(again.stdout).toMatch(/^shred_keys +done .*0 local secret\(s\) deleted/m);
    expect(again.stdout).toContain('tenant "acme" deleted; tombstone: audit seq');
    expect((await h.get('/v1/audit/verify?tenant=acme', op())).body.ok).toBe(true);
  });
});
