import { mkdir, rename, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLocalSecretStore, createLocalSource } from '../../adapters/local';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import type { CredentialRequest, CredentialSource } from '../../src/credentials/credential-source';
import { startHarness, type Harness } from '../support/broker-harness';
import { auditEvents, callId, expectAllow, expectDeny } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Fail closed: when the audit stream cannot be written, when a tenant's credential cannot be resolved,
 * or when its source never answers, the call is a 503 deny with no credential in it — never an allow,
 * never another tenant's value — and the other tenants carry on.
 */

const query = (token: string, tenant: string, call_id = callId('fail-closed')) => ({ token, tool: 'query_crm', arguments: { path: `${tenant}/x` }, call_id });

describe('audit stream and credential store failures', () => {
  let h: Harness;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    h = await startHarness();
    for (const t of ['acme', 'globex', 'initech']) tokens[t] = await h.token(`${t}-agent`, 'crm-mcp');
    // Every stream is open and has acknowledged records before anything breaks.
    for (const t of ['acme', 'globex', 'initech']) expectAllow(h, await h.authorize('crm-mcp', query(tokens[t]!, t)), t);
  });

  afterAll(async () => {
    await h?.close();
  });

  it("answers 503 audit_unavailable with no credential when acme's audit file cannot be written, keeps globex and initech working, and recovers with a chain that verifies", async () => {
    const file = join(h.dataDir, 'audit', 'acme.jsonl');
    const acmeBefore = await auditEvents(h, 'acme');
    // As root, chmod does not stop writes: put a directory where the file was instead.
    await rename(file, `${file}.aside`);
    await mkdir(file);
    const failedIds: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const id = callId('audit-down');
        failedIds.push(id);
        expectDeny(h, await h.authorize('crm-mcp', query(tokens.acme!, 'acme', id)), 503, 'audit_unavailable');
      }
      // A deny for another reason stays that deny: an audit failure never turns anything into an allow.
      expectDeny(h, await h.authorize('crm-mcp', { token: tokens.acme, tool: 'query_crm', arguments: { path: 'globex/x' } }), 403, 'resource_out_of_scope');
      expectAllow(h, await h.authorize('crm-mcp', query(tokens.globex!, 'globex')), 'globex');
      expectAllow(h, await h.authorize('crm-mcp', query(tokens.initech!, 'initech')), 'initech');
      const metrics = (await h.get('/metrics')).body as string;
      expect(Number(/^bulkhead_audit_write_failures_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
    } finally {
      await rmdir(file);
      await rename(`${file}.aside`, file);
    }

    const id = callId('audit-back');
    expectAllow(h, await h.authorize('crm-mcp', query(tokens.acme!, 'acme', id)), 'acme');
    const after = await auditEvents(h, 'acme');
    expect(after.slice(0, acmeBefore.length)).toEqual(acmeBefore);
    expect(after.filter((e) => failedIds.includes(e.call_id))).toEqual([]);
    expect(after.filter((e) => e.call_id === id).map((e) => e.decision)).toEqual(['allow']);
    const verify = await h.get('/v1/audit/verify?tenant=acme', h.operatorToken);
    expect(verify.body).toMatchObject({ ok: true, events: after.length });
  });

  it("answers 503 upstream_unavailable, never another tenant's value, when acme's secret is deleted or globex's data key is shredded", async () => {
    const store = createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) });
    expect(await store.delete('acme', 'crm')).toBe(true);
    const deleted = callId('secret-deleted');
    expectDeny(h, await h.authorize('crm-mcp', query(tokens.acme!, 'acme', deleted)), 503, 'upstream_unavailable');
    expectAllow(h, await h.authorize('crm-mcp', query(tokens.globex!, 'globex')), 'globex');

    await store.shredTenant('globex');
    const shredded = callId('key-shredded');
    expectDeny(h, await h.authorize('crm-mcp', query(tokens.globex!, 'globex', shredded)), 503, 'upstream_unavailable');
    expectDeny(h, await h.authorize('crm-mcp', query(tokens.acme!, 'acme')), 503, 'upstream_unavailable');
    expectAllow(h, await h.authorize('crm-mcp', query(tokens.initech!, 'initech')), 'initech');

    expect((await auditEvents(h, 'acme')).filter((e) => e.call_id === deleted).map((e) => [e.decision, e.reason])).toEqual([['deny', 'upstream_unavailable']]);
    expect((await auditEvents(h, 'globex')).filter((e) => e.call_id === shredded).map((e) => [e.decision, e.reason])).toEqual([['deny', 'upstream_unavailable']]);

    // Put back, each tenant gets its own value again.
    await store.set('acme', 'crm', h.upstream.acme!);
    await store.set('globex', 'crm', h.upstream.globex!);
    expectAllow(h, await h.authorize('crm-mcp', query(tokens.acme!, 'acme')), 'acme');
    expectAllow(h, await h.authorize('crm-mcp', query(tokens.globex!, 'globex')), 'globex');
  });

  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});

describe('a credential source that never answers', () => {
  let h: Harness;
  let local: CredentialSource | undefined;
  const hung: CredentialRequest[] = [];

  // initech's credential comes from an "AWS" that accepts the request and never answers; the embedded
  // mode has no other way to produce a slow upstream.
  const hanging: CredentialSource = {
    sources: ['aws'],
    resolve: (request) => {
      hung.push(request);
      return new Promise(() => undefined);
    },
  };
  // The real local source, built once the harness has made its data dir and master key.
  const lazyLocal: CredentialSource = { sources: ['local'], resolve: (request) => local!.resolve(request) };

  beforeAll(async () => {
    h = await startHarness({
      overrides: (p) => {
        // The address is never dialled: brokerOptions.sources replaces the adapters built from policy.
        p.broker.upstreams = { aws: { region: 'us-east-1', endpoint: 'http://127.0.0.1:9' } };
        p.tenants.initech.credentials.crm = { source: 'aws', secret_id: 'tenants/initech/crm' };
      },
      brokerOptions: { sources: [lazyLocal, hanging], upstreamTimeoutMs: 300 },
    });
    local = createLocalSource(createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }));
  });

  afterAll(async () => {
    await h?.close();
  });

  it('answers 503 upstream_unavailable after the timeout, aborts the upstream request, frees the slot, and keeps acme working meanwhile', async () => {
    const initech = await h.token('initech-agent', 'crm-mcp');
    const acme = await h.token('acme-agent', 'crm-mcp');
    const id = callId('hung');
    const [slow, fast] = await Promise.all([h.authorize('crm-mcp', query(initech, 'initech', id)), h.authorize('crm-mcp', query(acme, 'acme'))]);
    expectDeny(h, slow, 503, 'upstream_unavailable');
    expectAllow(h, fast, 'acme');

    expect(hung.map((r) => r.tenant)).toEqual(['initech']);
    expect(hung[0]!.signal.aborted).toBe(true);
    const status = await h.get('/v1/tenants/initech', h.operatorToken);
    expect(status.body.quota.in_flight).toBe(0);
    const events = (await auditEvents(h, 'initech')).filter((e) => e.call_id === id);
    expect(events.map((e) => [e.decision, e.reason])).toEqual([['deny', 'upstream_unavailable']]);
  });

  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});
