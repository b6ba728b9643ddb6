import { mkdir, readFile, rename, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLocalSecretStore, createLocalSource } from '../../adapters/local';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import type { CredentialRequest, CredentialSource } from '../../src/credentials/credential-source';
import { startHarness, type Harness } from '../support/broker-harness';
import { auditEvents, callId, expectAllow, expectDeny } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';
import { until } from '../support/until';

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
    // The intent written as the read started, then the deny: never an allow.
    expect(events.map((e) => [e.decision, e.reason])).toEqual([
      ['intent', undefined],
      ['deny', 'upstream_unavailable'],
    ]);
  });

  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});

describe('an upstream credential while the audit cannot be written', () => {
  let h: Harness;
  let local: CredentialSource | undefined;
  const value = `globex-upstream-${Date.now()}-secret-value`;
  const minted: string[] = [];
  const revoked: string[] = [];
  let breakAuditDuringRead: (() => Promise<void>) | undefined;

  // globex's credential comes from an upstream ("AWS") that answers with a leased value: the path on
  // which the intent record is written while the read runs, and the credential must still wait for it.
  const upstream: CredentialSource = {
    sources: ['aws'],
    resolve: async (request) => {
      await breakAuditDuringRead?.();
      const lease = `lease-${request.callId}`;
      minted.push(lease);
      return { source: 'aws', ref: 'tenants/globex/crm', value, lease_id: lease };
    },
    revokeLease: async (_tenant, lease) => {
      revoked.push(lease);
    },
  };
  const lazyLocal: CredentialSource = { sources: ['local'], resolve: (request) => local!.resolve(request) };

  beforeAll(async () => {
    h = await startHarness({
      overrides: (p) => {
        p.broker.upstreams = { aws: { region: 'us-east-1', endpoint: 'http://127.0.0.1:9' } };
        p.tenants.globex.credentials.crm = { source: 'aws', secret_id: 'tenants/globex/crm' };
      },
      brokerOptions: { sources: [lazyLocal, upstream] },
    });
    local = createLocalSource(createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }));
  });
  afterAll(async () => {
    await h?.close();
  });

  const file = () => join(h.dataDir, 'audit', 'globex.jsonl');
  const breakAudit = async () => {
    await rename(file(), `${file()}.aside`);
    await mkdir(file());
  };
  const mendAudit = async () => {
    await rmdir(file());
    await rename(`${file()}.aside`, file());
  };

  const lines = async () => (await readFile(file(), 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

  it('an allow is answered with the credential after its intent; the allow naming it follows with the same call id', async () => {
    const token = await h.token('globex-agent', 'crm-mcp');
    const id = callId('upstream-ok');
    const answer = await h.authorize('crm-mcp', query(token, 'globex', id));
    expect([answer.status, answer.body.decision, answer.body.credential.value]).toEqual([200, 'allow', value]);
    // Read right after the answer: the allow, durable a batch after the intent, is there too.
    const records = (await auditEvents(h, 'globex')).filter((e) => e.call_id === id);
    expect(records.map((e) => [e.decision, e.credential_ref, e.lease_id])).toEqual([
      ['intent', undefined, undefined],
      ['allow', 'aws:tenants/globex/crm', `lease-${id}`],
    ]);
  });

  it('audit unwritable before the call: 503 audit_unavailable, no credential, the minted lease revoked, nothing recorded; back once the file is', async () => {
    const token = await h.token('globex-agent', 'crm-mcp');
    const before = await auditEvents(h, 'globex');
    const id = callId('upstream-audit-down');
    await breakAudit();
    let answer;
    try {
      answer = await h.authorize('crm-mcp', query(token, 'globex', id));
    } finally {
      await mendAudit();
    }
    expectDeny(h, answer, 503, 'audit_unavailable');
    expect(JSON.stringify(answer.body)).not.toContain(value);
    expect(revoked).toContain(`lease-${id}`);
    const back = await h.authorize('crm-mcp', query(token, 'globex'));
    expect([back.status, back.body.credential?.value]).toEqual([200, value]);
    const after = await auditEvents(h, 'globex');
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.filter((e) => e.call_id === id)).toEqual([]);
    expect((await h.get('/v1/audit/verify?tenant=globex', h.operatorToken)).body.ok).toBe(true);
  });

  it('audit unwritable once the intent is durable: allowed on the intent, the next call refused, and verify names the call unfinished', async () => {
    const token = await h.token('globex-agent', 'crm-mcp');
    const id = callId('upstream-intent-only');
    breakAuditDuringRead = async () => {
      await until(async () => (await lines()).some((r) => r.call_id === id && r.decision === 'intent'), 'the intent was not written');
      await breakAudit();
    };
    let answer;
    let refused;
    try {
      answer = await h.authorize('crm-mcp', query(token, 'globex', id));
      breakAuditDuringRead = undefined;
      await until(async () => (await h.flushLogs(), (await readFile(h.logFile, 'utf8')).includes('the allow record after an intent could not be written')), 'the lost allow was not logged');
      refused = await h.authorize('crm-mcp', query(token, 'globex'));
    } finally {
      breakAuditDuringRead = undefined;
      await mendAudit();
    }
    // The credential left under a durable record of the decision; the record of the release is what was lost.
    expect([answer.status, answer.body.credential?.value]).toEqual([200, value]);
    expectDeny(h, refused, 503, 'audit_unavailable');
    expect(revoked).toContain(`lease-${refused.body.call_id}`);
    const back = await h.authorize('crm-mcp', query(token, 'globex'));
    expect([back.status, back.body.credential?.value]).toEqual([200, value]);
    expect((await lines()).filter((r) => r.call_id === id).map((r) => r.decision)).toEqual(['intent']);
    const verify = await h.get('/v1/audit/verify?tenant=globex', h.operatorToken);
    expect(verify.body.ok).toBe(true);
    expect(verify.body.unfinished).toEqual([{ seq: (await lines()).find((r) => r.call_id === id)!.seq, call_id: id }]);
  });
});
