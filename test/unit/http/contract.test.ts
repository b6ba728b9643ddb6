import { createLocalJWKSet, jwtVerify } from 'jose';
import { manualClock } from '../../../src/clock';
import { startHarness, type Harness } from '../../support/broker-harness';
import { decodeJwt, expectCleanJson, raw, type RawAnswer } from './raw-http';

/**
 * The HTTP contract of DESIGN.md, endpoint by endpoint: the exact shape of every answer a client, an MCP
 * server or an operator relies on. One broker, on a clock that only moves when a test moves it, with
 * three tenants set up to show each kind of answer: acme is ordinary, globex has tiny quotas, initech's
 * upstream credential does not exist (so resolving it fails closed).
 */

const ALLOW_KEYS = ['arguments', 'call_id', 'credential', 'decision', 'expires_at', 'principal', 'session', 'tenant', 'tool'];
const DENY_KEYS = new Set(['decision', 'reason', 'message', 'call_id', 'request_id', 'approval_id']);
const CLAIMS = ['aud', 'auth_time', 'client_id', 'exp', 'iat', 'iss', 'jti', 'nbf', 'scope', 'sid', 'sub', 'tid'];
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const clock = manualClock(Date.UTC(2030, 0, 1, 12, 0, 0));
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    brokerOptions: { clock },
    overrides: (p) => {
      p.tenants.globex.quotas = { calls_per_minute: 3, concurrency: 1 };
      p.tenants.initech.credentials.crm = { source: 'local', name: 'never-stored' };
    },
  });
});

afterAll(async () => {
  await h?.close();
});

const serverKey = (id = 'crm-mcp') => h.serverKeys[id]!;
const authorize = (body: unknown, server = 'crm-mcp') => raw(h.url, 'POST', '/v1/authorize', { body, bearer: serverKey(server) });
const operator = (method: string, path: string, body?: unknown) => raw(h.url, method, path, { body, bearer: h.operatorToken });

/** A deny: the DESIGN fields (plus request_id, and approval_id when an approval is pending), clean JSON. */
function expectDeny(answer: RawAnswer, status: number, reason: string): void {
  expectCleanJson(answer, h.secrets());
  expect(answer.status).toBe(status);
  expect(answer.json).toMatchObject({ decision: 'deny', reason, message: expect.any(String) });
  expect('call_id' in answer.json).toBe(true);
  for (const key of Object.keys(answer.json)) expect(DENY_KEYS).toContain(key);
}

function expectRetryAfter(answer: RawAnswer): void {
  expect(answer.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
}

describe('POST /v1/token', () => {
  const form = (extra: Record<string, string> = {}) =>
    new URLSearchParams({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent']!, audience: 'crm-mcp', ...extra }).toString();

  function expectTokenAnswer(answer: RawAnswer): void {
    expectCleanJson(answer, h.secrets());
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(Object.keys(answer.json).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
    expect(answer.json).toMatchObject({ token_type: 'Bearer', expires_in: 15 * 60, scope: 'query_crm export_report send_email' });
  }

  it('issues a token from a form post', async () => {
    expectTokenAnswer(await raw(h.url, 'POST', '/v1/token', { body: form(), contentType: 'application/x-www-form-urlencoded' }));
  });

  it('issues a token from a JSON post', async () => {
    const body = { grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'], audience: 'crm-mcp' };
    expectTokenAnswer(await raw(h.url, 'POST', '/v1/token', { body }));
  });

  it('issues a token with HTTP Basic client authentication', async () => {
    const basic = Buffer.from(`acme-agent:${encodeURIComponent(h.clientSecrets['acme-agent']!)}`).toString('base64');
    const answer = await raw(h.url, 'POST', '/v1/token', {
      body: 'grant_type=client_credentials&audience=crm-mcp',
      contentType: 'application/x-www-form-urlencoded',
      headers: { authorization: `Basic ${basic}` },
    });
    expectTokenAnswer(answer);
  });

  it('accepts RFC 8707 resource in place of audience, and a scope that narrows', async () => {
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent']!, resource: 'crm-mcp', scope: 'query_crm' });
    const answer = await raw(h.url, 'POST', '/v1/token', { body: body.toString(), contentType: 'application/x-www-form-urlencoded' });
    expect(answer.status).toBe(200);
    expect(answer.json.scope).toBe('query_crm');
    expect(decodeJwt(answer.json.access_token).payload.aud).toBe('crm-mcp');
  });

  it('answers a wrong Basic secret with 401 invalid_client and a WWW-Authenticate challenge', async () => {
    const basic = Buffer.from('acme-agent:wrong').toString('base64');
    const answer = await raw(h.url, 'POST', '/v1/token', { body: 'grant_type=client_credentials&audience=crm-mcp', contentType: 'application/x-www-form-urlencoded', headers: { authorization: `Basic ${basic}` } });
    expectCleanJson(answer, h.secrets());
    expect(answer.status).toBe(401);
    expect(answer.json).toEqual({ error: 'invalid_client', error_description: expect.any(String) });
    expect(answer.headers.get('www-authenticate')).toMatch(/^Basic /);
  });

  it('signs an at+jwt with EdDSA and a kid, carrying every DESIGN claim', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const { header, payload } = decodeJwt(token);
    expect(header).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: expect.any(String) });
    expect(Object.keys(payload).sort()).toEqual(CLAIMS);
    const now = Math.floor(clock.now() / 1000);
    expect(payload).toMatchObject({
      iss: 'http://bulkhead.test',
      sub: 'acme-agent',
      aud: 'crm-mcp',
      client_id: 'acme/acme-agent',
      tid: 'acme',
      sid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      scope: 'query_crm export_report send_email',
      auth_time: now,
      iat: now,
      nbf: now,
      exp: now + 15 * 60,
    });
  });

  it('keeps the session on a token-exchange refresh and says what it issued', async () => {
    const first = await h.token('acme-agent', 'crm-mcp');
    const answer = await raw(h.url, 'POST', '/v1/token', { body: { grant_type: TOKEN_EXCHANGE, subject_token: first, subject_token_type: ACCESS_TOKEN_TYPE, client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] } });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ token_type: 'Bearer', issued_token_type: ACCESS_TOKEN_TYPE });
    const before = decodeJwt(first).payload;
    const after = decodeJwt(answer.json.access_token).payload;
    expect(after.sid).toBe(before.sid);
    expect(after.jti).not.toBe(before.jti);
  });
});

describe('discovery documents', () => {
  it('publishes public Ed25519 keys only in /.well-known/jwks.json, and they verify issued tokens', async () => {
    const answer = await raw(h.url, 'GET', '/.well-known/jwks.json');
    expect(answer.status).toBe(200);
    const keys = answer.json.keys as Array<Record<string, unknown>>;
    // next + current at least (previous once a rotation has happened).
    expect(keys.length).toBeGreaterThanOrEqual(2);
    for (const key of keys) {
      expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid: expect.any(String) });
      for (const privateField of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(key).not.toHaveProperty(privateField);
    }
    expect(new Set(keys.map((k) => k.kid)).size).toBe(keys.length);

    const token = await h.token('acme-agent', 'crm-mcp');
    const { protectedHeader } = await jwtVerify(token, createLocalJWKSet(answer.json), {
      issuer: 'http://bulkhead.test',
      audience: 'crm-mcp',
      typ: 'at+jwt',
      currentDate: new Date(clock.now()),
    });
    expect(keys.map((k) => k.kid)).toContain(protectedHeader.kid);
  });

  it('publishes RFC 8414 metadata whose issuer is the tokens\' iss', async () => {
    const answer = await raw(h.url, 'GET', '/.well-known/oauth-authorization-server');
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({
      issuer: 'http://bulkhead.test',
      token_endpoint: 'http://bulkhead.test/v1/token',
      jwks_uri: 'http://bulkhead.test/.well-known/jwks.json',
      grant_types_supported: expect.arrayContaining(['client_credentials', TOKEN_EXCHANGE]),
      token_endpoint_auth_methods_supported: expect.arrayContaining(['client_secret_basic', 'client_secret_post']),
      response_types_supported: expect.any(Array),
    });
    expect(decodeJwt(await h.token('acme-agent', 'crm-mcp')).payload.iss).toBe(answer.json.issuer);
  });
});

describe('POST /v1/authorize', () => {
  it('answers an allow with exactly the DESIGN fields, effective arguments and the credential resolved now', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const claims = decodeJwt(token).payload;
    const answer = await authorize({ token, tool: 'query_crm', arguments: { path: 'acme/accounts/../leads', region: 'us-east-1' } });
    expectCleanJson(answer);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(Object.keys(answer.json).sort()).toEqual(ALLOW_KEYS);
    expect(answer.json).toEqual({
      decision: 'allow',
      call_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      tenant: 'acme',
      principal: 'acme-agent',
      session: claims.sid,
      tool: 'query_crm',
      // The injected region is forced; the path is normalised inside the tenant's prefix.
      arguments: { path: 'acme/leads', region: 'eu-west-1' },
      credential: { source: 'local', ref: expect.any(String), value: h.upstream.acme },
      expires_at: new Date((claims.exp as number) * 1000).toISOString(),
    });
    expect(Object.keys(answer.json.credential).sort()).toEqual(['ref', 'source', 'value']);
  });

  it('echoes a caller-supplied call_id on an allow and on a deny', async () => {
    const token = await h.token('acme-reader', 'crm-mcp');
    const allowed = await authorize({ token, tool: 'query_crm', arguments: { path: 'acme/a' }, call_id: 'contract-echo-1' });
    expect(allowed.json).toMatchObject({ decision: 'allow', call_id: 'contract-echo-1' });
    const denied = await authorize({ token, tool: 'export_report', arguments: {}, call_id: 'contract-echo-2' });
    expectDeny(denied, 403, 'tool_not_allowed');
    expect(denied.json.call_id).toBe('contract-echo-2');
  });

  it('names a broker-made call_id on a deny, and it is the one in the tenant\'s audit record', async () => {
    const token = await h.token('acme-reader', 'crm-mcp');
    const denied = await authorize({ token, tool: 'export_report', arguments: {} });
    expectDeny(denied, 403, 'tool_not_allowed');
    expect(denied.json.call_id).toMatch(/^[0-9a-f-]{36}$/);
    const events = await operator('GET', '/v1/audit?tenant=acme&limit=10000');
    expect(events.json.events.filter((e: { call_id?: string }) => e.call_id === denied.json.call_id)).toEqual([
      expect.objectContaining({ decision: 'deny', reason: 'tool_not_allowed' }),
    ]);
  });

  it('answers server authentication failures with 401 server_unauthenticated, echoing the call_id', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const body = { token, tool: 'query_crm', arguments: { path: 'acme/a' }, call_id: 'contract-401' };
    for (const bearer of [undefined, 'not-a-key', h.operatorToken, token]) {
      const answer = await raw(h.url, 'POST', '/v1/authorize', { body, bearer });
      expectDeny(answer, 401, 'server_unauthenticated');
      expect(answer.json.call_id).toBe('contract-401');
    }
  });

  it('answers a malformed request with 400 bad_request', async () => {
    expectDeny(await authorize({ tool: 'query_crm' }), 400, 'bad_request');
  });

  it('answers policy denials with 403 and the reason code', async () => {
    const acme = await h.token('acme-agent', 'crm-mcp');
    expectDeny(await authorize({ token: acme, tool: 'query_crm', arguments: { path: 'acme/a' } }, 'mail-mcp'), 403, 'audience_mismatch');
    expectDeny(await authorize({ token: acme, tool: 'query_crm', arguments: { path: 'globex/a' } }), 403, 'resource_out_of_scope');
    expectDeny(await authorize({ token: acme, tool: 'query_crm', arguments: { path: 'acme/a' }, tenant: 'globex' }), 403, 'tenant_override');
    expectDeny(await authorize({ token: acme + 'x', tool: 'query_crm', arguments: {} }), 403, 'token_invalid');
  });

  it('answers approval_required with 403 and an approval_id, and allows the exact call once approved', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const body = { token, tool: 'send_email', arguments: { to: 'ops@acme.example' } };
    const pending = await authorize(body);
    expectDeny(pending, 403, 'approval_required');
    expect(pending.json.approval_id).toEqual(expect.any(String));

    const approved = await operator('POST', `/v1/approvals/${pending.json.approval_id}/approve`);
    expect(approved.status).toBe(200);
    expect(approved.json).toEqual({ id: pending.json.approval_id, status: 'approved', tenant: 'acme', tool: 'send_email' });
    expect((await authorize(body)).json.decision).toBe('allow');
  });

  it('answers quota and concurrency denials with 429 and Retry-After; a reused call_id is a 400 that spends no quota', async () => {
    // globex: 3 calls per minute, 1 in flight. The clock does not move, so the window never slides.
    const token = await h.token('globex-agent', 'crm-mcp');
    const call = (call_id: string) => authorize({ token, tool: 'query_crm', arguments: { path: 'globex/a' }, call_id });

    expect((await call('g-1')).json.decision).toBe('allow'); // 1 of 3, holds the only slot

    const reused = await call('g-1');
    expectDeny(reused, 400, 'bad_request');
    expect(reused.json.message).toBe('call_id "g-1" is already in use');
    expect(reused.json.call_id).toBe('g-1');

    const busy = await call('g-2'); // 2 of 3
    expectDeny(busy, 429, 'concurrency_exceeded');
    expectRetryAfter(busy);

    const done = await raw(h.url, 'POST', '/v1/complete', { body: { call_id: 'g-1', status: 'success', records: 2 }, bearer: serverKey() });
    expect(done.status).toBe(200);
    expect(done.json).toEqual({ call_id: 'g-1', completed: true, quarantined: false, upstream_leases_revoked: 0 });

    // A completed call's id is free again. Had the reuse above spent quota, this would be the 4th call.
    expect((await call('g-1')).json.decision).toBe('allow'); // 3 of 3
    await raw(h.url, 'POST', '/v1/complete', { body: { call_id: 'g-1', status: 'error' }, bearer: serverKey() });

    const over = await call('g-3');
    expectDeny(over, 429, 'quota_exceeded');
    expectRetryAfter(over);
  });

  it('fails closed with 503 upstream_unavailable when the tenant\'s credential cannot be resolved', async () => {
    const token = await h.token('initech-agent', 'crm-mcp');
    const answer = await authorize({ token, tool: 'query_crm', arguments: { path: 'initech/a' }, call_id: 'contract-503' });
    expectDeny(answer, 503, 'upstream_unavailable');
    expect(answer.json.call_id).toBe('contract-503');
  });
});

describe('POST /v1/complete', () => {
  it('answers an unknown call, or another server\'s call, with 404', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    await authorize({ token, tool: 'query_crm', arguments: { path: 'acme/a' }, call_id: 'contract-complete' });
    const other = await raw(h.url, 'POST', '/v1/complete', { body: { call_id: 'contract-complete', status: 'success' }, bearer: serverKey('mail-mcp') });
    expectCleanJson(other);
    expect(other.status).toBe(404);
    expect(other.json).toMatchObject({ error: 'not_found', message: expect.any(String) });
    const own = await raw(h.url, 'POST', '/v1/complete', { body: { call_id: 'contract-complete', status: 'success' }, bearer: serverKey() });
    expect(own.json).toMatchObject({ call_id: 'contract-complete', completed: true });
  });
});

describe('POST /v1/manifest', () => {
  it('lists only what this principal may use on this server', async () => {
    const reader = await h.token('acme-reader', 'crm-mcp');
    const answer = await raw(h.url, 'POST', '/v1/manifest', { body: { token: reader }, bearer: serverKey() });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ tenant: 'acme', principal: 'acme-reader', tools: ['query_crm'], step_up: [] });

    const mail = await h.token('acme-agent', 'mail-mcp');
    const onMail = await raw(h.url, 'POST', '/v1/manifest', { body: { token: mail }, bearer: serverKey('mail-mcp') });
    expect(onMail.json).toMatchObject({ tenant: 'acme', tools: ['send_email'] });
  });

  it('denies a token meant for another server with 403 audience_mismatch', async () => {
    const mail = await h.token('acme-agent', 'mail-mcp');
    expectDeny(await raw(h.url, 'POST', '/v1/manifest', { body: { token: mail }, bearer: serverKey() }), 403, 'audience_mismatch');
  });
});

describe('operator API', () => {
  it('refuses a missing operator token, and a server key, with 401 operator_unauthenticated', async () => {
    for (const bearer of [undefined, serverKey()]) {
      const answer = await raw(h.url, 'GET', '/v1/tenants/acme', { bearer });
      expectCleanJson(answer, h.secrets());
      expect(answer.status).toBe(401);
      expect(answer.json).toMatchObject({ error: 'operator_unauthenticated' });
    }
  });

  it('describes a tenant at GET /v1/tenants/:id', async () => {
    const answer = await operator('GET', '/v1/tenants/acme');
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({
      tenant: 'acme',
      revoked: false,
      live_sessions: expect.any(Number),
      quota: { calls_last_minute: expect.any(Number), in_flight: expect.any(Number), calls_per_minute: 100_000, concurrency: 64 },
      // No budgets in this policy.
      budget: null,
      // The writer takes this tenant's records (a broken chain would say `locked`, with what was found).
      audit: { state: 'ok' },
    });
    expect(answer.json.live_sessions).toBeGreaterThan(0);
  });

  it('revokes a session with {revoked, upstream_leases_revoked, effective_at}, after which its calls are denied', async () => {
    const token = await h.token('acme-reader', 'crm-mcp');
    const sid = decodeJwt(token).payload.sid as string;
    const answer = await operator('POST', '/v1/revoke', { session: sid, reason: 'contract test' });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ revoked: { session: sid }, upstream_leases_revoked: 0, effective_at: new Date(clock.now()).toISOString() });
    expectDeny(await authorize({ token, tool: 'query_crm', arguments: { path: 'acme/a' } }), 403, 'session_revoked');
  });

  it('revokes and restores a tenant', async () => {
    const token = await h.token('initech-reader', 'crm-mcp');
    const revoked = await operator('POST', '/v1/revoke', { tenant: 'initech' });
    expect(revoked.json).toMatchObject({ revoked: { tenant: 'initech' } });
    expectDeny(await authorize({ token, tool: 'query_crm', arguments: { path: 'initech/a' } }), 403, 'tenant_revoked');
    expect((await operator('GET', '/v1/tenants/initech')).json.revoked).toBe(true);

    const restored = await operator('POST', '/v1/restore', { tenant: 'initech' });
    expect(restored.status).toBe(200);
    expect(restored.json).toEqual({ restored: true, tenant: 'initech' });
    expect((await operator('GET', '/v1/tenants/initech')).json.revoked).toBe(false);
  });

  it('reads one tenant\'s audit events and verifies its chain', async () => {
    const events = await operator('GET', '/v1/audit?tenant=acme&limit=5');
    expect(events.status).toBe(200);
    expect(events.json.tenant).toBe('acme');
    expect(events.json.events.length).toBe(5);
    for (const event of events.json.events) {
      expect(event).toMatchObject({ tenant: 'acme', seq: expect.any(Number), ts: expect.any(String), prev_hash: expect.stringMatching(/^[0-9a-f]{64}$/), hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    }
    const after = await operator('GET', `/v1/audit?tenant=acme&after=${events.json.events[4].seq}`);
    expect(after.json.events[0].seq).toBe(events.json.events[4].seq + 1);

    const verified = await operator('GET', '/v1/audit/verify?tenant=acme');
    expect(verified.json).toMatchObject({ ok: true, tenant: 'acme', events: expect.any(Number), head: expect.stringMatching(/^[0-9a-f]{64}$/), unsealed: 0 });
    expect(verified.json.signed_through).toBe(verified.json.events);
    expect(verified.json.events).toBeGreaterThan(5);
  });

  it('rotates signing keys and keeps verifying tokens signed before the rotation', async () => {
    const before = await h.token('acme-agent', 'crm-mcp');
    const answer = await operator('POST', '/v1/keys/rotate');
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ rotated: true, current_kid: expect.any(String) });
    expect(answer.json.current_kid).not.toBe(decodeJwt(before).header.kid);
    expect((await authorize({ token: before, tool: 'query_crm', arguments: { path: 'acme/a' } })).json.decision).toBe('allow');
    const jwks = await raw(h.url, 'GET', '/.well-known/jwks.json');
    expect(jwks.json.keys.length).toBe(3); // next, current, previous
  });
});

describe('health and metrics', () => {
  it('answers /healthz and /readyz', async () => {
    const health = await raw(h.url, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok' });
    const ready = await raw(h.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready', checks: expect.objectContaining({ audit: true, signing_key: true }), degraded_tenants: 0, policy_version: expect.any(String) });
    expect(Object.values(ready.json.checks).every((v) => v === true)).toBe(true);
  });

  it('serves Prometheus text with the decision counters and no tenant, principal, session or tool names', async () => {
    // Traffic from every tenant, allows and denies, has happened above; one more of each to be sure.
    const token = await h.token('globex-reader', 'crm-mcp');
    const { sid, jti } = decodeJwt(token).payload as { sid: string; jti: string };
    await authorize({ token, tool: 'export_report', arguments: {} });

    const answer = await raw(h.url, 'GET', '/metrics');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(answer.text).toMatch(/^# HELP bulkhead_authorize_decisions_total /m);
    expect(answer.text).toMatch(/^# TYPE bulkhead_authorize_decisions_total counter$/m);
    expect(answer.text).toMatch(/^bulkhead_authorize_decisions_total\{decision="allow",reason="allow"\} [1-9]\d*$/m);
    expect(answer.text).toMatch(/^bulkhead_authorize_decisions_total\{decision="deny",reason="tool_not_allowed"\} [1-9]\d*$/m);
    expect(answer.text).toMatch(/^bulkhead_authorize_decisions_total\{decision="deny",reason="quota_exceeded"\} [1-9]\d*$/m);
    expect(answer.text).toMatch(/^bulkhead_tokens_issued_total\{grant="client_credentials"\} [1-9]\d*$/m);

    for (const name of ['acme', 'globex', 'initech', 'agent', 'reader', 'query_crm', 'export_report', 'send_email', sid, jti, h.url]) {
      expect(answer.text).not.toContain(name);
    }
    for (const secret of h.secrets()) expect(answer.text).not.toContain(secret);
  });
});
