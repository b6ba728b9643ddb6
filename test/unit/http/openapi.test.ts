import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { parse as parseYaml } from 'yaml';
import { contractDocuments } from '../../../src/http/contract/documents';
import { expressPath, OPERATIONS } from '../../../src/http/contract/operations';
import { ENDPOINTS } from '../../../src/http/server-endpoints';
import { startHarness, type Harness } from '../../support/broker-harness';
import { raw, type RawAnswer, type RawRequest } from './raw-http';

/**
 * The OpenAPI document is the broker's API, not a description of it: served and committed copies are the
 * generated one; every route the server has is in it and every operation in it is a route the server
 * answers; a method a path does not take is a 405 naming the ones it does; and real answers — allows,
 * denies, operator and audit answers, OAuth errors — match the document's schema for their status.
 */

type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>>; components: { schemas: Record<string, object> } };

const ROOT = join(__dirname, '../../..');
const CONSOLE = '/console'; // a same-origin browser application behind its own session: not part of the API
let h: Harness;
let doc: Doc;
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
const checked: string[] = [];

beforeAll(async () => {
  h = await startHarness();
  doc = (await raw(h.url, 'GET', '/openapi.json')).json as Doc;
});

afterAll(async () => {
  await h?.close();
});

function bearer(auth: 'server' | 'operator' | 'none'): string | undefined {
  return auth === 'server' ? h.serverKeys['crm-mcp'] : auth === 'operator' ? h.operatorToken : undefined;
}

/** The operation whose template matches, in the document's form. */
function templateOf(path: string): string {
  const bare = path.split('?')[0]!;
  const op = OPERATIONS.find((o) => new RegExp(`^${o.path.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(bare));
  if (!op) throw new Error(`no operation for ${bare}`);
  return op.path;
}

/** Sends, then holds the answer to the document: a documented status, and a body its schema accepts. */
async function call(method: string, path: string, request: RawRequest = {}): Promise<RawAnswer> {
  const answer = await raw(h.url, method, path, request);
  const template = templateOf(path);
  const responses = doc.paths[template]?.[method.toLowerCase()]?.responses;
  expect({ [`${method} ${path}`]: responses?.[String(answer.status)] === undefined ? `undocumented ${answer.status}: ${answer.text.slice(0, 200)}` : 'documented' }).toEqual({ [`${method} ${path}`]: 'documented' });
  const schema = responses![String(answer.status)]!.content?.['application/json']?.schema;
  if (schema) {
    const validate = ajv.compile(schema);
    const ok = validate(answer.json);
    expect({ [`${method} ${path} ${answer.status}`]: ok ? 'matches' : ajv.errorsText(validate.errors) }).toEqual({ [`${method} ${path} ${answer.status}`]: 'matches' });
  }
  checked.push(`${method.toLowerCase()} ${template} ${answer.status}`);
  return answer;
}

/** Every route the express app has, with the path it is mounted under. */
function expressRoutes(stack: any[], prefix = ''): string[] {
  const found: string[] = [];
  for (const layer of stack) {
    if (layer.route) {
      for (const method of Object.keys(layer.route.methods)) found.push(`${method} ${prefix}${layer.route.path}`);
    } else if (Array.isArray(layer.handle?.stack)) {
      const mount = layer.slash ? '' : String(layer.rawPath);
      found.push(...expressRoutes(layer.handle.stack, prefix + mount));
    }
  }
  return found;
}

describe('the document is generated, served and committed as one', () => {
  it('serves the generated document at /openapi.json, and docs/ holds the same documents', () => {
    const generated = contractDocuments();
    expect(JSON.stringify(doc, null, 2) + '\n').toBe(generated['docs/openapi.json']);
    // Stale copies are refused: run `bash scripts/contract-docs.sh` after changing a schema or a route.
    for (const [file, text] of Object.entries(generated)) expect({ file, current: readFileSync(join(ROOT, file), 'utf8') === text }).toEqual({ file, current: true });
  });

  it('is OpenAPI 3.1 with the three credentials as security schemes and every operation secured as its route is', () => {
    const full = JSON.parse(contractDocuments()['docs/openapi.json']!);
    expect(full.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(full.components.securitySchemes).sort()).toEqual(['agentToken', 'clientBasic', 'operatorToken', 'serverKey']);
    expect(full.paths['/v1/revoke'].post.security).toEqual([{ operatorToken: [] }]);
    expect(full.paths['/v1/authorize'].post.security).toEqual([{ serverKey: [] }]);
    expect(full.paths['/healthz'].get.security).toEqual([]);
  });

  it('documents every typed reason under its status, from the error catalogue', () => {
    const deny403 = doc.paths['/v1/authorize']!.post!.responses['403']!.content!['application/json']!.schema as { properties: { reason: { enum: string[] } } };
    expect(deny403.properties.reason.enum).toEqual(expect.arrayContaining(['tenant_override', 'tool_not_allowed', 'token_revoked', 'approval_required']));
    const deny503 = doc.paths['/v1/authorize']!.post!.responses['503']!.content!['application/json']!.schema as { properties: { reason: { enum: string[] } } };
    expect(deny503.properties.reason.enum.sort()).toEqual(['audit_unavailable', 'state_unavailable', 'upstream_unavailable']);
    const op401 = doc.paths['/v1/revoke']!.post!.responses['401']!.content!['application/json']!.schema as { properties: { error: { enum: string[] } } };
    expect(op401.properties.error.enum).toContain('operator_unauthenticated');
  });
});

describe('the document matches the routes', () => {
  it('has every express route, and every operation is an express route (the console excepted)', () => {
    const served = [...expressRoutes((h.broker.app.express as any).router.stack), ...Object.values(ENDPOINTS).map((path) => `post ${path}`)].filter((r) => !r.split(' ')[1]!.startsWith(`${CONSOLE}/`) && r.split(' ')[1] !== CONSOLE);
    const documented = OPERATIONS.map((op) => `${op.method} ${expressPath(op.path)}`);
    expect([...new Set(served)].sort()).toEqual([...documented].sort());
  });

  it.each(OPERATIONS.map((op) => [op.method.toUpperCase(), op.path, op.security] as const))('%s %s is answered by its route, not the catch-all', async (method, path, security) => {
    const concrete = path.replace('{id}', 'acme').replace('{decision}', 'approve');
    const auth = security === 'server' ? 'server' : security === 'operator' ? 'operator' : 'none';
    const answer = await raw(h.url, method, concrete, { bearer: bearer(auth), ...(method === 'POST' ? { body: {} } : {}) });
    expect(answer.status).not.toBe(405);
    expect(answer.text).not.toMatch(/no route for/);
  });

  it.each([...new Set(OPERATIONS.map((op) => op.path))])('%s answers another method with 405 and the methods it takes', async (path) => {
    const methods = OPERATIONS.filter((op) => op.path === path).map((op) => op.method.toUpperCase());
    const wrong = methods.includes('GET') ? 'DELETE' : 'GET';
    const concrete = path.replace('{id}', 'acme').replace('{decision}', 'approve');
    const auth = OPERATIONS.find((op) => op.path === path)!.security;
    const answer = await raw(h.url, wrong, concrete, { bearer: bearer(auth === 'server' ? 'server' : auth === 'operator' ? 'operator' : 'none') });
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe(methods.join(', '));
    expect(answer.text).toMatch(new RegExp(`${wrong} is not allowed`));
  });

  it('still answers a path that is no operation with 404', async () => {
    const answer = await raw(h.url, 'GET', '/v1/nothing-here');
    expect(answer.status).toBe(404);
    expect(answer.headers.get('allow')).toBeNull();
  });
});

describe('real answers match the document', () => {
  it('an agent call from token to completion, with its denies', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const server = bearer('server');
    const allow = await call('POST', '/v1/authorize', { bearer: server, body: { token, tool: 'query_crm', arguments: { path: 'acme/report' } } });
    expect(allow.status).toBe(200);
    expect((await call('POST', '/v1/complete', { bearer: server, body: { call_id: allow.json.call_id, status: 'success', records: 3 } })).status).toBe(200);
    expect((await call('POST', '/v1/complete', { bearer: server, body: { call_id: allow.json.call_id, status: 'success' } })).status).toBe(404);
    expect((await call('POST', '/v1/manifest', { bearer: server, body: { token } })).status).toBe(200);
    expect((await call('POST', '/v1/authorize', { bearer: server, body: { token, tool: 'query_crm', arguments: { path: 'globex/x' } } })).json.reason).toBe('resource_out_of_scope');
    expect((await call('POST', '/v1/authorize', { bearer: server, body: { token, tool: 'query_crm', tenant_id: 'globex' } })).json.reason).toBe('tenant_override');
    expect((await call('POST', '/v1/authorize', { bearer: server, body: { token: 'not-a-jwt', tool: 'query_crm' } })).status).toBe(403);
    expect((await call('POST', '/v1/authorize', { bearer: 'wrong', body: { token, tool: 'query_crm' } })).status).toBe(401);
    expect((await call('POST', '/v1/authorize', { bearer: server, body: { tool: 7 } })).status).toBe(400);
    expect((await call('POST', '/v1/authorize', { bearer: server, body: 'tool=x', contentType: 'text/plain' })).status).toBe(415);
    expect((await call('POST', '/v1/manifest', { bearer: server, body: { token: 'nope' } })).status).toBe(403);

    const approval = await call('POST', '/v1/authorize', { bearer: server, body: { token, tool: 'send_email', arguments: { to: 'a@acme.example' } } });
    expect(approval.json.reason).toBe('approval_required');
    const pending = await call('GET', '/v1/approvals?tenant=acme', { bearer: bearer('operator') });
    expect(pending.json.approvals.map((a: { id: string }) => a.id)).toContain(approval.json.approval_id);
    expect((await call('POST', `/v1/approvals/${approval.json.approval_id}/approve`, { bearer: bearer('operator'), body: {} })).status).toBe(200);
    expect((await call('POST', '/v1/approvals/unknown/deny', { bearer: bearer('operator'), body: {} })).status).toBe(404);
  });

  it('the token endpoints, in RFC 6749 shape', async () => {
    const form = (fields: Record<string, string>) => ({ body: new URLSearchParams(fields).toString(), contentType: 'application/x-www-form-urlencoded' });
    const secret = h.clientSecrets['acme-agent']!;
    const issued = await call('POST', '/v1/token', form({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: secret, audience: 'crm-mcp' }));
    expect(issued.status).toBe(200);
    expect((await call('POST', '/v1/token', form({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: 'wrong', audience: 'crm-mcp' }))).status).toBe(401);
    expect((await call('POST', '/v1/token', { body: { grant_type: 'password' } })).status).toBe(400);
    expect((await call('POST', '/v1/token/introspect', { bearer: bearer('server'), ...form({ token: issued.json.access_token }) })).json.active).toBe(true);
    expect((await call('POST', '/v1/token/introspect', form({ token: issued.json.access_token }))).status).toBe(401);
    expect((await call('POST', '/v1/token/revoke', form({ token: issued.json.access_token, client_id: 'acme-agent', client_secret: secret }))).status).toBe(200);
  });

  it('the operator and audit answers', async () => {
    const op = bearer('operator');
    for (const path of ['/v1/tenants/acme', '/v1/tenants/nobody', '/v1/audit?tenant=acme&limit=5', '/v1/audit?tenant=acme&limit=0', '/v1/audit/verify?tenant=acme', '/v1/audit/checkpoints?tenant=acme', '/v1/audit/export?tenant=acme', '/v1/audit/correlate?request_id=none']) {
      await call('GET', path, { bearer: op });
    }
    expect((await call('GET', '/v1/audit?tenant=acme')).status).toBe(401);
    // An empty integer is no integer (coercion alone would read `after=` as 0).
    expect((await call('GET', '/v1/audit?tenant=acme&after=', { bearer: op })).status).toBe(400);
    expect((await call('GET', '/v1/audit?tenant=acme&limit=', { bearer: op })).status).toBe(400);
    const revoked = await call('POST', '/v1/revoke', { bearer: op, body: { principal: 'initech/initech-reader', reason: 'contract test', force: true } });
    expect(revoked.status).toBe(200);
    expect((await call('POST', '/v1/revoke', { bearer: op, body: { tenant: 'initech', session: 'x' } })).status).toBe(400);
    expect((await call('POST', '/v1/restore', { bearer: op, body: { tenant: 'initech' } })).status).toBe(200);
    expect((await call('POST', '/v1/keys/rotate', { bearer: op, body: {} })).status).toBe(200);
    expect((await call('GET', '/v1/revocations', { bearer: op })).status).toBe(200);
    expect((await call('GET', '/v1/revocations?tenant=nobody', { bearer: op })).status).toBe(404);
    expect((await call('GET', '/v1/quarantines?tenant=acme', { bearer: op })).status).toBe(200);
    expect((await call('POST', '/v1/quarantines/lift', { bearer: op, body: { session: 'never-quarantined', reason: 'contract test' } })).status).toBeGreaterThanOrEqual(400);
    await call('POST', '/v1/policy/reload', { bearer: op, body: {} });
    expect((await call('POST', '/v1/tenants/acme/export', { bearer: op, body: {} })).status).toBe(200);
    expect((await call('POST', '/v1/tenants/nobody/export', { bearer: op, body: {} })).status).toBe(404);
    // A delete whose confirm is not the tenant id is refused before anything is shredded.
    expect((await call('POST', '/v1/tenants/acme/delete', { bearer: op, body: { confirm: 'globex' } })).status).toBe(400);
    expect((await call('POST', '/v1/selftest/countersign', { bearer: op, body: { digest: 'a'.repeat(64), run_id: 'contract-test', ok: true } })).status).toBe(200);
    // An intact stream has no break to seal.
    expect((await call('POST', '/v1/audit/seal', { bearer: op, body: { tenant: 'acme', reason: 'contract test' } })).status).toBeGreaterThanOrEqual(400);
  });

  it('the public documents and the browser login', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/.well-known/jwks.json', '/.well-known/oauth-authorization-server', '/.well-known/bulkhead-audit-keys.json', '/authorize', '/authorize/callback?state=unknown']) {
      const answer = await call('GET', path);
      expect(answer.status).toBeLessThan(500);
    }
  });

  it('covered most operations with a real answer', () => {
    const reached = new Set(checked.map((c) => c.split(' ').slice(0, 2).join(' ')));
    const missing = OPERATIONS.map((op) => `${op.method} ${op.path}`).filter((op) => !reached.has(op));
    expect(missing).toEqual([]);
  });
});

describe('the policy file schema', () => {
  const schema = JSON.parse(contractDocuments()['docs/policy.schema.json']!);
  const validate = new Ajv2020({ strict: false, validateFormats: false }).compile(schema);
  const example = () => {
    const markdown = readFileSync(join(ROOT, 'docs/policy.md'), 'utf8');
    // The example's placeholders stand for real values: a SHA-256 in hex, a URL.
    const filled = /```yaml\n([\s\S]*?)```/.exec(markdown)![1]!.replaceAll('"<hex>"', '"'.concat('ab'.repeat(32), '"')).replaceAll('"…"', '"https://idp.acme.example/jwks"').replaceAll('"postgres://…"', '"postgres://db.example/bulkhead"');
    return parseYaml(filled) as Record<string, any>;
  };

  it("accepts the documented example policy (docs/policy.md)", () => {
    expect(validate(example()) ? 'valid' : validate.errors).toBe('valid');
  });

  it.each([
    ['an unknown top-level key', (p: any) => (p.tenant = {})],
    ['an unknown tenant key', (p: any) => (Object.values(p.tenants)[0] as any).quota = {}],
    ['a credential source that does not exist', (p: any) => (Object.values((Object.values(p.tenants)[0] as any).credentials)[0] as any).source = 'ftp'],
    ['a tenant id with a slash', (p: any) => (p.tenants['acme/evil'] = Object.values(p.tenants)[0])],
    ['a TLS mode that does not exist', (p: any) => (p.broker = { ...p.broker, tls: { mode: 'on' } })],
  ])('refuses %s, as the loader does', (_what, mutate) => {
    const policy = example();
    mutate(policy);
    expect(validate(policy)).toBe(false);
  });
});
