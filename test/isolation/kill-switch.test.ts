import { startHarness, type Harness } from '../support/broker-harness';
import { allAudit, auditEvents, callId, claimsOf, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * The kill switch: once POST /v1/revoke has answered, the target's next call is denied with the matching
 * reason — before any other check could answer differently — including for tokens issued before the
 * revoke, and no refresh brings it back. A tenant revocation survives restarts until restored, and the
 * restore lets in only tokens issued after it; session, principal and token revocations are permanent. Only operators can
 * revoke, and operators cannot authorize.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

const EXCHANGE = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
// A refresh is the token's own client asking (its principal's secret), as refresh-client-auth.test.ts proves.
const refresh = (token: string) => h.post('/v1/token', { ...EXCHANGE, subject_token: token, client_id: claimsOf(token).sub, client_secret: h.clientSecrets[claimsOf(token).sub] });
const revoke = (target: Record<string, string | boolean>) => h.post('/v1/revoke', { ...target, reason: 'isolation test' }, h.operatorToken);
const tenantOf = (token: string) => claimsOf(token).tid as string;
const goodCall = (token: string) => ({ token, tool: 'query_crm', arguments: { path: `${tenantOf(token)}/x` } });

/**
 * Tries the target with a good call and with calls that other checks would deny for their own reasons
 * (unknown tool, foreign resource, tenant override, approval, a tool the token lacks): the revocation
 * reason must win every time, and none of the calls may be allowed anywhere.
 */
async function expectRevokedFirst(token: string, reason: string): Promise<void> {
  const tenant = tenantOf(token);
  const attempts = [
    goodCall(token),
    { token, tool: 'no_such_tool', arguments: {} },
    { token, tool: 'query_crm', arguments: { path: 'other/../../x' } },
    { token, tool: 'query_crm', arguments: { path: `${tenant}/x`, tenant_id: 'someone-else' } },
    { token, tool: 'query_crm', arguments: { path: `${tenant}/x` }, tid: 'someone-else' },
    { token, tool: 'send_email', arguments: { to: 'x@example.com' } },
  ];
  const ids: string[] = [];
  for (const body of attempts) {
    const id = callId(`revoked-${reason}`);
    ids.push(id);
    expectDeny(h, await h.authorize('crm-mcp', { ...body, call_id: id }), 403, reason);
  }
  await expectNoAllowAnywhere(h, ids);
  const recorded = (await auditEvents(h, tenant)).filter((e) => ids.includes(e.call_id));
  expect(recorded.map((e) => [e.decision, e.reason])).toEqual(ids.map(() => ['deny', reason]));
}

async function expectAllowed(token: string): Promise<void> {
  expectAllow(h, await h.authorize('crm-mcp', goodCall(token)), tenantOf(token));
}

describe('session, token and principal revocation', () => {
  it('denies every token of a revoked session, issued before the revoke or refreshed from it, and refuses to refresh it (session_revoked)', async () => {
    const first = await h.token('globex-agent', 'crm-mcp');
    const refreshed = (await refresh(first)).body.access_token as string;
    expect(claimsOf(refreshed).sid).toBe(claimsOf(first).sid);
    const sibling = await h.token('globex-agent', 'crm-mcp');
    await expectAllowed(first);
    await expectAllowed(refreshed);

    const answer = await revoke({ session: claimsOf(first).sid });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ revoked: { session: claimsOf(first).sid }, upstream_leases_revoked: expect.any(Number), effective_at: expect.any(String) });
    // The revocation is in the session's own tenant's audit stream, and in no other.
    const revokeRecords = async (tenant: string) => (await auditEvents(h, tenant)).filter((e: { type?: string; detail?: string }) => e.type === 'revoke' && e.detail === `session ${claimsOf(first).sid}`);
    expect(await revokeRecords('globex')).toEqual([expect.objectContaining({ operator: 'ops', reason: 'isolation test' })]);
    expect(await revokeRecords('acme')).toEqual([]);
    expect(await revokeRecords('initech')).toEqual([]);

    await expectRevokedFirst(first, 'session_revoked');
    await expectRevokedFirst(refreshed, 'session_revoked');
    for (const token of [first, refreshed]) {
      const again = await refresh(token);
      expect([again.status, again.body.error]).toEqual([400, 'invalid_grant']);
      expect(again.body).not.toHaveProperty('access_token');
    }
    // Same principal, another session: unaffected.
    await expectAllowed(sibling);
    await expectAllowed(await h.token('globex-agent', 'crm-mcp'));
  });

  it('denies one revoked token while the other tokens of its session keep working (token_revoked)', async () => {
    const first = await h.token('globex-agent', 'crm-mcp');
    const refreshed = (await refresh(first)).body.access_token as string;
    expect((await revoke({ jti: claimsOf(first).jti, force: true })).status).toBe(200);

    await expectRevokedFirst(first, 'token_revoked');
    const again = await refresh(first);
    expect([again.status, again.body.error]).toEqual([400, 'invalid_grant']);
    await expectAllowed(refreshed);
  });

  it('denies every token of a revoked principal and refuses it new ones, while its tenant\'s other principal keeps working (principal_revoked)', async () => {
    const reader = await h.token('initech-reader', 'crm-mcp');
    const agent = await h.token('initech-agent', 'crm-mcp');
    const answer = await revoke({ principal: 'initech/initech-reader' });
    expect(answer.status).toBe(200);
    expect(answer.body.revoked).toEqual({ principal: 'initech/initech-reader' });

    await expectRevokedFirst(reader, 'principal_revoked');
    const fresh = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'initech-reader', client_secret: h.clientSecrets['initech-reader'], audience: 'crm-mcp' });
    expect([fresh.status, fresh.body.error]).toEqual([400, 'invalid_grant']);
    expect(fresh.body).not.toHaveProperty('access_token');
    expect([(await refresh(reader)).status]).toEqual([400]);
    await expectAllowed(agent);
  });
});

describe('tenant revocation', () => {
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    for (const name of ['agent', 'session', 'jti', 'reader']) tokens[name] = await h.token(name === 'reader' ? 'acme-reader' : 'acme-agent', 'crm-mcp');
    tokens.globex = await h.token('globex-agent', 'crm-mcp');
    tokens.initech = await h.token('initech-agent', 'crm-mcp');
    for (const token of Object.values(tokens)) await expectAllowed(token);
    // Narrower revocations inside acme first: they must outlive the tenant's restore.
    expect((await revoke({ session: claimsOf(tokens.session!).sid })).status).toBe(200);
    expect((await revoke({ jti: claimsOf(tokens.jti!).jti, force: true })).status).toBe(200);
    expect((await revoke({ principal: 'acme-reader' })).status).toBe(200);
  });

  it("denies every acme token, issued before the revoke, with tenant_revoked first, and leaves globex and initech working", async () => {
    const globexBefore = await auditEvents(h, 'globex');
    const answer = await revoke({ tenant: 'acme' });
    expect(answer.status).toBe(200);
    expect(answer.body.revoked).toEqual({ tenant: 'acme' });

    for (const name of ['agent', 'session', 'jti', 'reader']) await expectRevokedFirst(tokens[name]!, 'tenant_revoked');
    const fresh = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'], audience: 'crm-mcp' });
    expect([fresh.status, fresh.body.error]).toEqual([400, 'invalid_grant']);
    expect([(await refresh(tokens.agent!)).status]).toEqual([400]);

    await expectAllowed(tokens.globex!);
    await expectAllowed(tokens.initech!);
    expect((await auditEvents(h, 'globex')).slice(0, globexBefore.length)).toEqual(globexBefore);
    expect((await auditEvents(h, 'globex')).some((e) => e.reason === 'tenant_revoked')).toBe(false);
    expect((await auditEvents(h, 'acme')).filter((e) => e.type === 'revoke').map((e) => e.detail)).toContain('tenant acme');
    expect((await h.get('/v1/tenants/acme', h.operatorToken)).body.revoked).toBe(true);
    expect((await h.get('/v1/tenants/globex', h.operatorToken)).body.revoked).toBe(false);
  });

  it('keeps acme revoked across a restart, until POST /v1/restore', async () => {
    await h.restart();
    for (const name of ['agent', 'session', 'jti', 'reader']) await expectRevokedFirst(tokens[name]!, 'tenant_revoked');
    await expectAllowed(tokens.globex!);
  });

  it('restores acme for new tokens only: every token issued before the revoke stays dead, and its revoked principal stays revoked, across another restart too', async () => {
    const answer = await h.post('/v1/restore', { tenant: 'acme' }, h.operatorToken);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ restored: true, tenant: 'acme' });

    // A restore is "not before" the revoke (restore-not-before.test.ts has the edge cases).
    const after = async () => {
      for (const name of ['agent', 'session', 'jti', 'reader']) await expectRevokedFirst(tokens[name]!, 'tenant_revoked');
      await expectAllowed(await h.token('acme-agent', 'crm-mcp'));
      const reader = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'acme-reader', client_secret: h.clientSecrets['acme-reader'], audience: 'crm-mcp' });
      expect([reader.status, reader.body.error]).toEqual([400, 'invalid_grant']);
      for (const name of ['agent', 'session', 'jti']) expect((await refresh(tokens[name]!)).status).toBe(400);
    };
    await after();
    await h.restart();
    await after();
    // And the revocations made before the first restart, in other tenants, are still there.
    const initechReader = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'initech-reader', client_secret: h.clientSecrets['initech-reader'], audience: 'crm-mcp' });
    expect([initechReader.status, initechReader.body.error]).toEqual([400, 'invalid_grant']);
  });
});

describe('who may pull the switch', () => {
  it('refuses /v1/revoke and the rest of the operator API to a server key, a client secret and an access token, and revokes nothing', async () => {
    const token = await h.token('globex-agent', 'crm-mcp');
    const before = await allAudit(h);
    const bearers = [h.serverKeys['crm-mcp']!, h.serverKeys['mail-mcp']!, h.clientSecrets['globex-agent']!, token];
    for (const bearer of bearers) {
      for (const [path, body] of [
        ['/v1/revoke', { tenant: 'globex' }],
        ['/v1/revoke', { session: claimsOf(token).sid }],
        ['/v1/restore', { tenant: 'acme' }],
        ['/v1/keys/rotate', {}],
        ['/v1/approvals/x/approve', {}],
      ] as const) {
        const answer = await h.post(path, body, bearer);
        expect([path, answer.status, answer.body.error]).toEqual([path, 401, 'operator_unauthenticated']);
      }
      const audit = await h.get('/v1/audit?tenant=globex', bearer);
      expect([audit.status, audit.body.error]).toEqual([401, 'operator_unauthenticated']);
      expect(audit.body).not.toHaveProperty('events');
    }
    expect(await allAudit(h)).toEqual(before);
    await expectAllowed(token);
    expect((await h.get('/v1/tenants/globex', h.operatorToken)).body.revoked).toBe(false);
  });

  it('refuses /v1/authorize, /v1/complete and /v1/manifest to the operator token, a client secret and an access token (server_unauthenticated)', async () => {
    const token = await h.token('globex-agent', 'crm-mcp');
    const before = await allAudit(h);
    for (const bearer of [h.operatorToken, h.clientSecrets['globex-agent']!, token, '']) {
      const answer = await h.post('/v1/authorize', goodCall(token), bearer || undefined);
      expectDeny(h, answer, 401, 'server_unauthenticated');
      const manifest = await h.post('/v1/manifest', { token }, bearer || undefined);
      expect([manifest.status, manifest.body.reason]).toEqual([401, 'server_unauthenticated']);
      expect(manifest.body).not.toHaveProperty('tools');
      const complete = await h.post('/v1/complete', { call_id: 'x', status: 'success' }, bearer || undefined);
      expect([complete.status, complete.body.error]).toEqual([401, 'server_unauthenticated']);
    }
    expect(await allAudit(h)).toEqual(before);
  });

  it('refuses a revoke that names two targets or an unknown tenant, and revokes nothing', async () => {
    const token = await h.token('globex-agent', 'crm-mcp');
    const two = await h.post('/v1/revoke', { tenant: 'globex', session: claimsOf(token).sid }, h.operatorToken);
    expect([two.status, two.body.error]).toEqual([400, 'bad_request']);
    const unknown = await h.post('/v1/revoke', { tenant: 'umbrella' }, h.operatorToken);
    expect([unknown.status, unknown.body.error]).toEqual([404, 'not_found']);
    await expectAllowed(token);
  });
});

describe('secrets', () => {
  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(h.issuedTokens.length).toBeGreaterThan(10);
    expect(await findLeaks(h)).toEqual([]);
  });
});
