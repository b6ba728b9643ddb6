import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DENY_REASONS } from '../../../src/errors';
import { startHarness, TENANTS, type Harness } from '../../support/broker-harness';
import { decodeJwt, expectCleanJson, raw, type RawAnswer, type RawRequest } from './raw-http';

/**
 * Hostile and sloppy input on every endpoint a client can reach. Each answer must be JSON with a reason
 * code and a message that names the field at fault, never a stack trace or a path; and none of it may
 * leave anything behind: no audit records (except a deny for a request whose token verified) and no
 * change to revocation state.
 */

type Shape = 'deny' | 'error' | 'oauth';
type Auth = 'server' | 'operator' | 'none';

interface Endpoint {
  method: 'POST' | 'GET';
  path: string;
  auth: Auth;
  shape: Shape;
  /** A body that passes validation; each case below breaks one thing in it. */
  valid: () => Record<string, unknown>;
  /** [body, what the message must say]. */
  missing: () => Array<[Record<string, unknown>, RegExp]>;
  wrongTypes: Array<[string, unknown, RegExp]>;
  /** How an unknown field is answered: refused, or ignored as RFC 6749 §3.2 asks of token endpoints. */
  unknownFields: 'refused' | 'ignored';
}

let h: Harness;
let accessToken = '';
let jti = '';
/** Requests that carried a verified token and reached the pipeline: each may leave one deny record. */
const verifiedDenies: string[] = [];

const OAUTH_ERRORS = ['invalid_request', 'invalid_client', 'invalid_grant', 'invalid_scope', 'invalid_target', 'unsupported_grant_type'];

beforeAll(async () => {
  h = await startHarness();
  accessToken = await h.token('acme-agent', 'crm-mcp');
  jti = decodeJwt(accessToken).payload.jti as string;
});

afterAll(async () => {
  await h?.close();
});

function bearerFor(auth: Auth): string | undefined {
  if (auth === 'server') return h.serverKeys['crm-mcp'];
  if (auth === 'operator') return h.operatorToken;
  return undefined;
}

function send(endpoint: Pick<Endpoint, 'method' | 'path' | 'auth'>, request: RawRequest = {}, path = endpoint.path): Promise<RawAnswer> {
  return raw(h.url, endpoint.method, path, { bearer: bearerFor(endpoint.auth), ...request });
}

/** JSON, clean, and in the endpoint's error shape with a reason code. */
function expectError(answer: RawAnswer, shape: Shape, status: number, message?: RegExp): void {
  expectCleanJson(answer, [...h.secrets(), accessToken]);
  expect(answer.status).toBe(status);
  const text = (answer.json.message ?? answer.json.error_description) as string;
  if (shape === 'deny') {
    expect(answer.json).toMatchObject({ decision: 'deny', reason: expect.any(String), message: expect.any(String) });
    expect('call_id' in answer.json).toBe(true);
    expect(DENY_REASONS).toContain(answer.json.reason);
  } else if (shape === 'oauth') {
    expect(Object.keys(answer.json).sort()).toEqual(['error', 'error_description']);
    expect(OAUTH_ERRORS).toContain(answer.json.error);
  } else {
    expect(answer.json).toMatchObject({ error: expect.any(String), message: expect.any(String) });
  }
  if (message) expect(text).toMatch(message);
}

const authorize: Endpoint = {
  method: 'POST',
  path: '/v1/authorize',
  auth: 'server',
  shape: 'deny',
  valid: () => ({ token: accessToken, tool: 'query_crm', arguments: { path: 'acme/accounts' } }),
  missing: () => [
    [{ tool: 'query_crm' }, /^token: Required$/],
    [{ token: 'x' }, /^tool: Required$/],
  ],
  wrongTypes: [
    ['token', 5, /^token: /],
    ['token', '', /^token: /],
    ['tool', ['query_crm'], /^tool: /],
    ['tool', null, /^tool: /],
    ['arguments', 'path=acme/x', /^arguments: /],
    ['arguments', [1, 2], /^arguments: /],
    ['call_id', 7, /^call_id: /],
    ['call_id', 'has spaces and / slashes', /^call_id: must be 1-128 characters/],
    ['call_id', 'x'.repeat(129), /^call_id: /],
    ['tenant', { id: 'acme' }, /^tenant: /],
  ],
  unknownFields: 'refused',
};

const complete: Endpoint = {
  method: 'POST',
  path: '/v1/complete',
  auth: 'server',
  shape: 'error',
  valid: () => ({ call_id: 'call-1', status: 'success', records: 3 }),
  missing: () => [
    [{ status: 'success' }, /^call_id: Required$/],
    [{ call_id: 'call-1' }, /^status: Required$/],
  ],
  wrongTypes: [
    ['call_id', 12, /^call_id: /],
    ['status', 'done', /^status: /],
    ['status', true, /^status: /],
    ['records', -1, /^records: /],
    ['records', '3', /^records: /],
    ['records', 1.5, /^records: /],
  ],
  unknownFields: 'refused',
};

const manifest: Endpoint = {
  method: 'POST',
  path: '/v1/manifest',
  auth: 'server',
  shape: 'deny',
  valid: () => ({ token: accessToken }),
  missing: () => [[{}, /^token: Required$/]],
  wrongTypes: [
    ['token', 5, /^token: /],
    ['token', { jwt: accessToken }, /^token: /],
  ],
  unknownFields: 'refused',
};

// A valid revoke body would revoke acme: every case below must leave acme (and its token) working.
const revoke: Endpoint = {
  method: 'POST',
  path: '/v1/revoke',
  auth: 'operator',
  shape: 'error',
  valid: () => ({ tenant: 'acme' }),
  missing: () => [
    [{}, /exactly one of tenant, session, principal, jti/],
    [{ reason: 'incident 42' }, /exactly one of tenant, session, principal, jti/],
    [{ tenant: 'acme', session: 'abc' }, /exactly one of tenant, session, principal, jti/],
  ],
  wrongTypes: [
    ['tenant', 5, /^tenant: /],
    ['tenant', '../globex', /^tenant: must be 1-64 characters/],
    ['tenant', ['acme'], /^tenant: /],
    ['reason', 42, /^reason: /],
    ['reason', 'r'.repeat(501), /^reason: /],
    ['force', 'yes', /^force: /],
    ['ttl', 'soon', /^ttl: must be a positive duration/],
    ['ttl', -5, /^ttl: /],
  ],
  unknownFields: 'refused',
};

const restore: Endpoint = {
  method: 'POST',
  path: '/v1/restore',
  auth: 'operator',
  shape: 'error',
  valid: () => ({ tenant: 'acme' }),
  missing: () => [
    [{}, /exactly one of tenant, principal, session/],
    [{ reason: 'mistake' }, /exactly one of tenant, principal, session/],
    [{ tenant: 'acme', session: 'abc', reason: 'mistake' }, /exactly one of tenant, principal, session/],
    [{ principal: 'acme/acme-agent' }, /needs a reason/],
  ],
  wrongTypes: [
    ['tenant', 5, /^tenant: /],
    ['tenant', 'acme/../globex', /^tenant: /],
    ['reason', 42, /^reason: /],
  ],
  unknownFields: 'refused',
};

const token: Endpoint = {
  method: 'POST',
  path: '/v1/token',
  auth: 'none',
  shape: 'oauth',
  valid: () => ({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'], audience: 'crm-mcp' }),
  missing: () => [
    [{}, /^grant_type is required$/],
    [{ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] }, /^audience \(or resource\) is required$/],
    [{ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' }, /^subject_token is required$/],
  ],
  wrongTypes: [
    ['grant_type', 5, /grant_type/],
    ['client_id', 5, /^client_id is invalid$/],
    ['client_secret', { value: 'x' }, /^client_secret is invalid$/],
    ['audience', ['crm-mcp'], /^audience is invalid$/],
    ['scope', 7, /^scope is invalid$/],
    ['expires_in', 'soon', /^expires_in is invalid$/],
  ],
  unknownFields: 'ignored',
};

const approve: Endpoint = {
  method: 'POST',
  path: '/v1/approvals/00000000-0000-4000-8000-000000000000/approve',
  auth: 'operator',
  shape: 'error',
  valid: () => ({}),
  missing: () => [],
  wrongTypes: [],
  unknownFields: 'refused',
};

const POST_ENDPOINTS = [authorize, complete, manifest, revoke, restore, token, approve];
const ALL_NAMES = POST_ENDPOINTS.map((e) => [e.path, e] as const);

describe.each(ALL_NAMES)('%s refuses malformed bodies', (_path, endpoint) => {
  it('answers malformed JSON with a 400 that says so', async () => {
    const answer = await send(endpoint, { body: '{"token": "abc", ' });
    expectError(answer, endpoint.shape, 400, /not valid JSON/);
  });

  it.each([
    ['a JSON array', '[{"token":"x"}]'],
    ['a JSON string', '"token"'],
    ['a JSON number', '42'],
    ['JSON null', 'null'],
  ])('answers %s with a 400 asking for an object', async (_what, body) => {
    const answer = await send(endpoint, { body });
    expectError(answer, endpoint.shape, 400, /must be a (form or a )?JSON object/);
  });

  it('answers a body over the size limit with 413', async () => {
    const answer = await send(endpoint, { body: { ...endpoint.valid(), padding: 'x'.repeat(70 * 1024) } });
    expectError(answer, endpoint.shape, 413, /larger than the \d+ byte limit/);
  });

  it('answers a JSON body sent as text/plain with 415 naming the content type', async () => {
    const answer = await send(endpoint, { body: endpoint.valid(), contentType: 'text/plain' });
    expectError(answer, endpoint.shape, 415, /Content-Type must be .*application\/json/);
  });

  it('answers a non-UTF-8 charset with 415', async () => {
    const answer = await send(endpoint, { body: endpoint.valid(), contentType: 'application/json; charset=latin1' });
    expectError(answer, endpoint.shape, 415, /encoding is not supported/);
  });

  if (endpoint !== token) {
    it('answers a form body with 415 (only the token endpoint takes forms)', async () => {
      const answer = await send(endpoint, { body: 'tenant=acme&token=x', contentType: 'application/x-www-form-urlencoded' });
      expectError(answer, endpoint.shape, 415, /Content-Type must be application\/json/);
    });
  }

  if (endpoint !== approve) {
    it('answers an empty body by naming the first field it needs', async () => {
      const [, expected] = endpoint.missing()[0]!;
      expectError(await send(endpoint, { body: '' }), endpoint.shape, 400, expected);
      expectError(await send(endpoint), endpoint.shape, 400, expected);
    });

    it('answers each incomplete body by naming what is missing', async () => {
      for (const [body, message] of endpoint.missing()) {
        const answer = await send(endpoint, { body });
        expectError(answer, endpoint.shape, 400, message);
      }
    });
  }

  if (endpoint.wrongTypes.length > 0) {
    it.each(endpoint.wrongTypes.map(([field, value, message]) => [field, JSON.stringify(value).slice(0, 30), value, message] as const))(
      'answers %s = %s with a 400 naming the field',
      async (field, _label, value, message) => {
        const answer = await send(endpoint, { body: { ...endpoint.valid(), [field]: value } });
        expectError(answer, endpoint.shape, 400, message);
      },
    );
  }

  if (endpoint.unknownFields === 'refused') {
    it('refuses an unknown field and names it', async () => {
      const answer = await send(endpoint, { body: { ...endpoint.valid(), is_admin: true } });
      expectError(answer, endpoint.shape, 400, /unknown key "is_admin"/);
    });

    it('refuses a "__proto__" field instead of merging it', async () => {
      const answer = await send(endpoint, { body: `{"__proto__": {"is_admin": true}, ${JSON.stringify(endpoint.valid()).slice(1)}`.replace(', }', '}') });
      expectError(answer, endpoint.shape, 400, /reserved key "__proto__"/);
    });
  }
});

describe('the token endpoint speaks RFC 6749 about bad input', () => {
  it('ignores unknown parameters, as RFC 6749 §3.2 requires, and still issues a token', async () => {
    const answer = await send(token, { body: { ...token.valid(), is_admin: 'true', tenant: 'globex' } });
    expect(answer.status).toBe(200);
    // The extra "tenant" changed nothing: the token is acme's.
    expect(decodeJwt(answer.json.access_token).payload.tid).toBe('acme');
  });

  it('refuses a repeated form parameter instead of picking one', async () => {
    const form = `grant_type=client_credentials&client_id=acme-agent&client_id=globex-agent&client_secret=${h.clientSecrets['acme-agent']}&audience=crm-mcp`;
    const answer = await send(token, { body: form, contentType: 'application/x-www-form-urlencoded' });
    expectError(answer, 'oauth', 400, /^client_id is invalid$/);
  });

  it('refuses a repeated audience in a form', async () => {
    const form = `grant_type=client_credentials&client_id=acme-agent&client_secret=${h.clientSecrets['acme-agent']}&audience=crm-mcp&audience=mail-mcp`;
    const answer = await send(token, { body: form, contentType: 'application/x-www-form-urlencoded' });
    expectError(answer, 'oauth', 400, /^audience is invalid$/);
  });

  it('answers a missing client id as a failed client authentication (401), not as a hint', async () => {
    const answer = await send(token, { body: { grant_type: 'client_credentials', audience: 'crm-mcp' } });
    expectError(answer, 'oauth', 401, /client authentication failed/);
    expect(answer.json.error).toBe('invalid_client');
  });

  it('answers an unsupported grant type with unsupported_grant_type', async () => {
    const answer = await send(token, { body: { grant_type: 'password', username: 'a', password: 'b' } });
    expectError(answer, 'oauth', 400, /grant_type is not supported/);
    expect(answer.json.error).toBe('unsupported_grant_type');
  });

  it('answers a wrong method in RFC 6749 shape too', async () => {
    const answer = await raw(h.url, 'GET', '/v1/token');
    expectCleanJson(answer, h.secrets());
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('POST');
    expect(Object.keys(answer.json).sort()).toEqual(['error', 'error_description']);
  });
});

describe('GET /v1/audit refuses bad queries', () => {
  const audit = { method: 'GET' as const, path: '/v1/audit', auth: 'operator' as const };

  it.each([
    ['no tenant', '', /^tenant: Required$/],
    ['a repeated tenant', '?tenant=acme&tenant=globex', /^tenant: Expected string, received array$/],
    ['a tenant that is not an id', '?tenant=..%2Fglobex', /^tenant: must be 1-64 characters/],
    ['a non-numeric limit', '?tenant=acme&limit=ten', /^limit: /],
    ['a zero limit', '?tenant=acme&limit=0', /^limit: /],
    ['a negative after', '?tenant=acme&after=-1', /^after: /],
    ['an unknown parameter', '?tenant=acme&include=globex', /unknown key "include"/],
    ['a nested parameter', '?tenant[a]=acme', /tenant/],
  ])('answers %s with a 400 naming the parameter', async (_what, query, message) => {
    const answer = await send(audit, {}, audit.path + query);
    expectError(answer, 'error', 400, message);
  });

  it('answers a repeated tenant on /v1/audit/verify the same way', async () => {
    const answer = await send(audit, {}, '/v1/audit/verify?tenant=acme&tenant=globex');
    expectError(answer, 'error', 400, /^tenant: Expected string, received array$/);
  });

  it('answers an unknown tenant with 404 naming it', async () => {
    const answer = await send(audit, {}, '/v1/audit?tenant=hooli');
    expectError(answer, 'error', 404, /unknown tenant "hooli"/);
  });
});

describe('unknown routes and wrong methods', () => {
  it.each([
    ['GET', '/', 'none'],
    ['GET', '/v1', 'none'],
    ['GET', '/v1/authorise', 'server'],
    ['POST', '/v1/authorize/extra', 'server'],
    ['GET', '/wp-admin/setup.php', 'none'],
  ] as const)('%s %s is a JSON 404 naming the method and path', async (method, path, auth) => {
    const answer = await send({ method: method as 'GET', path, auth });
    expectError(answer, 'error', 404, new RegExp(`no route for ${method} ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    expect(answer.json.error).toBe('not_found');
  });

  // The methods a path takes come from the API's one list of operations (src/http/contract/operations.ts).
  it.each([
    ['GET', '/v1/authorize', 'server', 'POST'],
    ['PUT', '/v1/authorize', 'server', 'POST'],
    ['GET', '/v1/complete', 'server', 'POST'],
    ['GET', '/v1/manifest', 'server', 'POST'],
    ['GET', '/v1/revoke', 'operator', 'POST'],
    ['DELETE', '/v1/revoke', 'operator', 'POST'],
    ['PATCH', '/v1/restore', 'operator', 'POST'],
    ['POST', '/v1/audit', 'operator', 'GET'],
    ['GET', '/v1/approvals/x/approve', 'operator', 'POST'],
    ['POST', '/healthz', 'none', 'GET'],
    ['DELETE', '/.well-known/jwks.json', 'none', 'GET'],
  ] as const)('%s %s is a JSON 405 naming the methods it takes', async (method, path, auth, allowed) => {
    const answer = await send({ method: method as 'GET', path, auth });
    expectError(answer, 'error', 405, new RegExp(`${method} is not allowed on .* \\(use ${allowed}\\)$`));
    expect(answer.json.error).toBe('method_not_allowed');
    expect(answer.headers.get('allow')).toBe(allowed);
  });

  it('answers an approval decision other than approve or deny with 404', async () => {
    const answer = await send({ method: 'POST', path: '/v1/approvals/abc/maybe', auth: 'operator' });
    expectError(answer, 'error', 404, /approve or .*deny/);
  });

  it('answers an unknown approval id with 404', async () => {
    expectError(await send(approve), 'error', 404, /no pending approval/);
  });

  it('answers an unknown tenant on /v1/tenants/:id with 404', async () => {
    const answer = await send({ method: 'GET', path: '/v1/tenants/..%2F..%2Fetc', auth: 'operator' });
    expectError(answer, 'error', 404, /unknown tenant/);
  });

  it.each([
    ['GET', '/v1/tenants/constructor', undefined],
    ['GET', '/v1/tenants/toString', undefined],
    ['GET', '/v1/audit?tenant=constructor', undefined],
    ['GET', '/v1/audit/verify?tenant=hasOwnProperty', undefined],
    ['POST', '/v1/revoke', { tenant: 'constructor' }],
    ['POST', '/v1/revoke', { principal: 'constructor' }],
    ['POST', '/v1/revoke', { principal: 'constructor/acme-agent' }],
    ['POST', '/v1/restore', { tenant: 'toString' }],
  ])('%s %s %j: a name Object.prototype has is an unknown tenant (404), not a 500', async (method, path, body) => {
    const answer = await send({ method: method as 'GET', path, auth: 'operator' }, body === undefined ? {} : { body });
    expectError(answer, 'error', 404, /(unknown tenant|not in policy)/);
  });

  it('ignores a query string on POST endpoints (the body is the only input)', async () => {
    const answer = await send(authorize, { body: {} }, '/v1/authorize?token=x&tool=query_crm&tenant=a&tenant=b');
    expectError(answer, 'deny', 400, /^token: Required$/);
  });
});

describe('well-formed but wrong values that reach the pipeline', () => {
  it('denies an unknown tool on a verified token with 403 tool_not_allowed, without echoing the name', async () => {
    const answer = await send(authorize, { body: { ...authorize.valid(), tool: 'drop_tables', call_id: 'bad-input-tool' } });
    verifiedDenies.push('bad-input-tool');
    expectError(answer, 'deny', 403, /^this tool \(not one this server serves\) is not allowed/);
    expect(answer.text).not.toContain('drop_tables');
    expect(answer.json).toMatchObject({ reason: 'tool_not_allowed', call_id: 'bad-input-tool' });
  });

  it('denies a garbage token with 403 token_invalid and does not echo it', async () => {
    const garbage = 'eyJhbGciOiJub25lIn0.eyJ0aWQiOiJnbG9iZXgifQ.';
    const answer = await send(authorize, { body: { ...authorize.valid(), token: garbage } });
    expectError(answer, 'deny', 403);
    expect(answer.json.reason).toBe('token_invalid');
    expect(answer.text).not.toContain(garbage);
  });

  it('echoes a valid caller call_id even when the body is refused', async () => {
    const answer = await send(authorize, { body: { call_id: 'echo-me-1', tool: 'query_crm' } });
    expectError(answer, 'deny', 400, /^token: Required$/);
    expect(answer.json.call_id).toBe('echo-me-1');
  });
});

describe('nothing is half-written by bad input', () => {
  it('left no audit record except the denies of requests whose token verified', async () => {
    for (const tenant of TENANTS) {
      const answer = await raw(h.url, 'GET', `/v1/audit?tenant=${tenant}`, { bearer: h.operatorToken });
      expect(answer.status).toBe(200);
      const events = answer.json.events as Array<Record<string, unknown>>;
      if (tenant !== 'acme') {
        expect(events).toEqual([]);
        continue;
      }
      expect(events.map((e) => e.call_id)).toEqual(verifiedDenies);
      for (const event of events) expect(event).toMatchObject({ type: 'authorize', decision: 'deny', jti });
    }
  });

  it('left revocation state unchanged: no tenant revoked, nothing journalled, the token still allowed', async () => {
    for (const tenant of TENANTS) {
      const answer = await raw(h.url, 'GET', `/v1/tenants/${tenant}`, { bearer: h.operatorToken });
      expect(answer.json.revoked).toBe(false);
    }
    const journal = await readFile(join(h.dataDir, 'revocations.jsonl'), 'utf8').catch(() => '');
    expect(journal.trim()).toBe('');
    const allowed = await send(authorize, { body: authorize.valid() });
    expect(allowed.status).toBe(200);
    expect(allowed.json.decision).toBe('allow');
  });

  it('logged none of the secrets or tokens it was sent', async () => {
    const log = await readFile(h.logFile, 'utf8');
    for (const secret of [...h.secrets(), accessToken]) expect(log).not.toContain(secret);
  });
});
