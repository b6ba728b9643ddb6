import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SECURITY_STREAM } from '../../src/audit/security-stream';
import { startHarness, TENANTS, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { auditEvents, callId, expectAllow, expectDeny } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Per-tenant audit: 100 concurrent authorize calls spread over three tenants, allows and denies mixed,
 * each land in exactly their own tenant's stream — none missing, none extra, none in a neighbour's —
 * and every stream's hash chain verifies, through the API and through the CLI on the files themselves.
 */

let h: Harness;
type Expected = { call_id: string; decision: 'allow' | 'deny'; reason?: string; principal: string; tool: string };
const expected: Record<string, Expected[]> = Object.fromEntries(TENANTS.map((t) => [t, []]));

beforeAll(async () => {
  [h] = await Promise.all([startHarness(), ensureBuiltCli()]);
}, 180_000);

afterAll(async () => {
  await h?.close();
});

describe('100 calls over three tenants', () => {
  const strayIds = [callId('stray'), callId('stray'), callId('stray')];
  beforeAll(async () => {
    const agents = Object.fromEntries(await Promise.all(TENANTS.map(async (t) => [t, await h.token(`${t}-agent`, 'crm-mcp')] as const)));
    const readers = Object.fromEntries(await Promise.all(TENANTS.map(async (t) => [t, await h.token(`${t}-reader`, 'crm-mcp')] as const)));

    const calls = Array.from({ length: 100 }, (_, i) => {
      const tenant = TENANTS[i % 3]!;
      const neighbour = TENANTS[(i + 1) % 3]!;
      const id = callId(`audit-${tenant}-${i}`);
      switch (i % 6) {
        case 3:
          return { tenant, id, expect: 'tool_not_allowed', principal: `${tenant}-reader`, tool: 'export_report', body: { token: readers[tenant], tool: 'export_report', arguments: {}, call_id: id } };
        case 4:
          return { tenant, id, expect: 'resource_out_of_scope', principal: `${tenant}-agent`, tool: 'query_crm', body: { token: agents[tenant], tool: 'query_crm', arguments: { path: `${neighbour}/x` }, call_id: id } };
        case 5:
          return { tenant, id, expect: 'tenant_override', principal: `${tenant}-agent`, tool: 'query_crm', body: { token: agents[tenant], tool: 'query_crm', arguments: { path: `${tenant}/x`, tenant_id: neighbour }, call_id: id } };
        default:
          return { tenant, id, expect: 'allow', principal: `${tenant}-${i % 2 ? 'reader' : 'agent'}`, tool: 'query_crm', body: { token: i % 2 ? readers[tenant] : agents[tenant], tool: 'query_crm', arguments: { path: `${tenant}/r${i}` }, call_id: id } };
      }
    });

    const answers = await Promise.all(calls.map((c) => h.authorize('crm-mcp', c.body)));
    calls.forEach((c, i) => {
      const answer = answers[i]!;
      if (c.expect === 'allow') {
        expectAllow(h, answer, c.tenant);
        expected[c.tenant]!.push({ call_id: c.id, decision: 'allow', principal: c.principal, tool: c.tool });
      } else {
        expectDeny(h, answer, 403, c.expect);
        expected[c.tenant]!.push({ call_id: c.id, decision: 'deny', reason: c.expect, principal: c.principal, tool: c.tool });
      }
    });

    // Garbage and a wrong server key name no tenant: they belong in the security stream only. Acme's
    // token on the wrong server verified, so it is a deny in acme's stream (token-denies.test.ts covers them all).
    const strays = await Promise.all([
      h.authorize('crm-mcp', { token: 'garbage', tool: 'query_crm', arguments: {}, call_id: strayIds[0] }),
      h.authorize('mail-mcp', { token: agents.acme, tool: 'send_email', arguments: {}, call_id: strayIds[1] }),
      h.post('/v1/authorize', { token: agents.globex, tool: 'query_crm', arguments: { path: 'globex/x' }, call_id: strayIds[2] }, 'not-a-server-key'),
    ]);
    expect(strays.map((s) => s.body.reason)).toEqual(['token_invalid', 'audience_mismatch', 'server_unauthenticated']);
    expected.acme!.push({ call_id: strayIds[1]!, decision: 'deny', reason: 'audience_mismatch', principal: 'acme-agent', tool: 'send_email' });
  });

  it.each(TENANTS.map((t) => [t]))("puts exactly %s's calls, and nothing else, in %s's stream", async (tenant) => {
    const events = await auditEvents(h, tenant);
    const byCall = (a: { call_id: string }, b: { call_id: string }) => a.call_id.localeCompare(b.call_id);
    const seen = events
      .map((e) => ({ call_id: e.call_id, decision: e.decision, ...(e.reason ? { reason: e.reason } : {}), principal: e.principal, tool: e.tool }))
      .sort(byCall);
    expect(seen).toEqual([...expected[tenant]!].sort(byCall));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    for (const event of events) {
      expect(event).toMatchObject({ tenant, type: 'authorize', server: event.call_id === strayIds[1] ? 'mail-mcp' : 'crm-mcp' });
      expect(event.principal.startsWith(`${tenant}-`)).toBe(true);
      if (event.decision === 'allow') expect(event.credential_ref).toBe(`local:local:${tenant}/crm`);
    }
    // 100 calls over three tenants: 34, 33 and 33, and acme's token presented by the wrong server.
    expect(events.length).toBe(TENANTS.indexOf(tenant) === 0 ? 35 : 33);
  });

  it('puts the garbage token and the wrong server key in the security stream, and nothing else', async () => {
    const events = await auditEvents(h, SECURITY_STREAM);
    expect(events.map((e) => [e.reason, e.endpoint])).toEqual(
      expect.arrayContaining([
        ['token_invalid', '/v1/authorize'],
        ['server_unauthenticated', '/v1/authorize'],
      ]),
    );
    expect(events).toHaveLength(2);
  });

  it.each(TENANTS.map((t) => [t]))("verifies %s's hash chain through GET /v1/audit/verify", async (tenant) => {
    const answer = await h.get(`/v1/audit/verify?tenant=${tenant}`, h.operatorToken);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ ok: true, events: expected[tenant]!.length, head: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('verifies every chain with `bulkhead audit verify --data-dir` (exit 0), and the same command catches a tampered copy (exit 1)', async () => {
    const ok = await runCli(['audit', 'verify', '--data-dir', h.dataDir]);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    for (const tenant of TENANTS) expect(ok.stdout).toContain(`${tenant}: ok, ${expected[tenant]!.length} events`);

    const copy = await mkdtemp(join(tmpdir(), 'bulkhead-audit-copy-'));
    try {
      // The whole data dir, as an auditor would take it: streams, checkpoints and the sealed audit keys.
      await cp(h.dataDir, copy, { recursive: true });
      const file = join(copy, 'audit', 'globex.jsonl');
      const lines = (await readFile(file, 'utf8')).split('\n');
      // Turn one deny into an allow: the kind of edit an attacker covering tracks would make.
      const i = lines.findIndex((l) => l.includes('"decision":"deny"'));
      lines[i] = lines[i]!.replace('"decision":"deny"', '"decision":"allow"');
      await writeFile(file, lines.join('\n'));
      const broken = await runCli(['audit', 'verify', '--data-dir', copy]);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toMatch(/globex: BROKEN at record \d+/);
      expect(broken.stdout).toContain(`acme: ok, ${expected.acme!.length} events`);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it('answers GET /v1/audit only for a known tenant named exactly', async () => {
    for (const tenant of ['../acme', 'acme/../globex', 'acme%2f..%2fglobex', '']) {
      const answer = await h.get(`/v1/audit?tenant=${encodeURIComponent(tenant)}`, h.operatorToken);
      expect([tenant, answer.status]).toEqual([tenant, 400]);
      expect(answer.body).not.toHaveProperty('events');
    }
    const unknown = await h.get('/v1/audit?tenant=umbrella', h.operatorToken);
    expect([unknown.status, unknown.body.error]).toEqual([404, 'not_found']);
    const twice = await h.get('/v1/audit?tenant=acme&tenant=globex', h.operatorToken);
    expect(twice.status).toBe(400);
    expect(twice.body).not.toHaveProperty('events');
  });
});

describe('secrets', () => {
  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});
