import { randomBytes } from 'node:crypto';
import { startHarness, type Harness } from '../support/broker-harness';
import { sha256Hex } from '../../src/crypto/hash';
import { allAudit, auditEvents, callId, claimsOf, deniedInAcmeOnly, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks, scanScope } from '../support/leak-scan';

/**
 * Tenant A (acme) tries to reach tenant B's (globex's) tools, servers and resources with a valid token
 * of its own, and to talk the broker into another tenant through the request body or the arguments.
 * globex has a tool of its own (`ledger`) and a server of its own (`ledger-mcp`).
 */

let h: Harness;
const ledgerKey = randomBytes(24).toString('base64url');
// The principal id "agent" exists in both acme and globex, each with its own secret.
const shared = { acme: randomBytes(24).toString('base64url'), globex: randomBytes(24).toString('base64url') };

beforeAll(async () => {
  h = await startHarness({
    overrides: (p) => {
      p.tenants.globex.tools.ledger = { credential: 'crm' };
      p.tenants.globex.principals['globex-agent'].tools.push('ledger');
      p.servers['crm-mcp'].tools.push('ledger');
      p.servers['ledger-mcp'] = { key_sha256: sha256Hex(ledgerKey), tools: ['ledger'] };
      p.tenants.acme.principals.agent = { secret_sha256: sha256Hex(shared.acme), tools: ['query_crm'] };
      p.tenants.globex.principals.agent = { secret_sha256: sha256Hex(shared.globex), tools: ['query_crm'] };
    },
  });
});

afterAll(async () => {
  await h?.close();
});

const authorizeAs = (key: string, body: unknown) => h.post('/v1/authorize', body, key);

describe('tokens, tools and servers', () => {
  it("denies tenant acme's token on globex's tool, while globex's own token reaches it with globex's credential", async () => {
    const acme = await h.token('acme-agent', 'crm-mcp');
    const globex = await h.token('globex-agent', 'crm-mcp');
    const before = await allAudit(h);
    const id = callId('acme-on-ledger');

    expectDeny(h, await h.authorize('crm-mcp', { token: acme, tool: 'ledger', arguments: {}, call_id: id }), 403, 'tool_not_allowed');
    await expectNoAllowAnywhere(h, [id], before, 'acme');
    expect((await auditEvents(h, 'acme')).filter((e) => e.call_id === id).map((e) => [e.decision, e.reason])).toEqual([['deny', 'tool_not_allowed']]);

    expectAllow(h, await h.authorize('crm-mcp', { token: globex, tool: 'ledger', arguments: {} }), 'globex');
  });

  it("refuses to issue acme a token for globex's server or globex's tool", async () => {
    const forLedgerServer = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'], audience: 'ledger-mcp' });
    expect([forLedgerServer.status, forLedgerServer.body.error]).toEqual([400, 'invalid_scope']);
    expect(forLedgerServer.body).not.toHaveProperty('access_token');

    const forLedgerTool = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'], audience: 'crm-mcp', scope: 'query_crm ledger' });
    expect([forLedgerTool.status, forLedgerTool.body.error]).toEqual([400, 'invalid_scope']);
    expect(forLedgerTool.body).not.toHaveProperty('access_token');
  });

  it("denies acme's crm-mcp token when globex's server or mail-mcp presents it (audience_mismatch)", async () => {
    const acme = await h.token('acme-agent', 'crm-mcp');
    const before = await allAudit(h);
    const ids = [callId('acme-token-on-ledger-mcp'), callId('acme-token-on-mail-mcp')];

    expectDeny(h, await authorizeAs(ledgerKey, { token: acme, tool: 'ledger', arguments: {}, call_id: ids[0] }), 403, 'audience_mismatch');
    expectDeny(h, await h.authorize('mail-mcp', { token: acme, tool: 'send_email', arguments: {}, call_id: ids[1] }), 403, 'audience_mismatch');
    // The token's signature verified, so its tenant is known: both denies are in acme's stream, and only there.
    await expectNoAllowAnywhere(h, ids, before, 'acme');
    const recorded = (await auditEvents(h, 'acme')).filter((e) => ids.includes(e.call_id));
    expect(recorded.map((e) => [e.call_id, e.decision, e.reason, e.server])).toEqual([
      [ids[0], 'deny', 'audience_mismatch', 'ledger-mcp'],
      [ids[1], 'deny', 'audience_mismatch', 'mail-mcp'],
    ]);
  });

  it('denies a mail-mcp token on crm-mcp for the tool both serve (audience_mismatch)', async () => {
    const mail = await h.token('acme-agent', 'mail-mcp');
    expect(claimsOf(mail).scope).toBe('send_email');
    const before = await allAudit(h);
    const id = callId('mail-token-on-crm');
    expectDeny(h, await h.authorize('crm-mcp', { token: mail, tool: 'send_email', arguments: {}, call_id: id }), 403, 'audience_mismatch');
    await expectNoAllowAnywhere(h, [id], before, 'acme');
    expect((await auditEvents(h, 'acme')).filter((e) => e.call_id === id).map((e) => [e.decision, e.reason])).toEqual([['deny', 'audience_mismatch']]);
  });

  it('denies acme-reader the export_report tool its principal does not have (tool_not_allowed)', async () => {
    const reader = await h.token('acme-reader', 'crm-mcp');
    expect(claimsOf(reader).scope).toBe('query_crm');
    const before = await allAudit(h);
    const id = callId('reader-export');
    expectDeny(h, await h.authorize('crm-mcp', { token: reader, tool: 'export_report', arguments: {}, call_id: id }), 403, 'tool_not_allowed');
    await expectNoAllowAnywhere(h, [id], before, 'acme');

    const widened = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'acme-reader', client_secret: h.clientSecrets['acme-reader'], audience: 'crm-mcp', scope: 'export_report' });
    expect([widened.status, widened.body.error]).toEqual([400, 'invalid_scope']);
  });

  it("respects a token's narrowed scope at authorize, in the manifest and across refresh", async () => {
    const narrowed = await h.token('acme-agent', 'crm-mcp', { scope: 'query_crm' });
    expect(claimsOf(narrowed).scope).toBe('query_crm');
    const before = await allAudit(h);
    const id = callId('narrowed-export');
    expectDeny(h, await h.authorize('crm-mcp', { token: narrowed, tool: 'export_report', arguments: {}, call_id: id }), 403, 'tool_not_allowed');
    await expectNoAllowAnywhere(h, [id], before, 'acme');

    const manifest = await h.authorize('crm-mcp', { token: narrowed, tool: 'query_crm', arguments: { path: 'acme/x' } });
    expectAllow(h, manifest, 'acme');
    const seen = await h.post('/v1/manifest', { token: narrowed }, h.serverKeys['crm-mcp']);
    expect(seen.body).toEqual({ tenant: 'acme', principal: 'acme-agent', tools: ['query_crm'], step_up: ['export_report', 'send_email'] });

    const exchange = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: narrowed, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] };
    const widened = await h.post('/v1/token', { ...exchange, scope: 'query_crm export_report' });
    expect([widened.status, widened.body.error]).toEqual([400, 'invalid_scope']);
    const refreshed = await h.post('/v1/token', exchange);
    expect(refreshed.status).toBe(200);
    expect(claimsOf(refreshed.body.access_token)).toMatchObject({ scope: 'query_crm', tid: 'acme', sid: claimsOf(narrowed).sid });
  });

  it.each([['constructor'], ['__proto__'], ['toString'], ['hasOwnProperty'], ['QUERY_CRM'], ['query_crm '], ['ｑｕｅｒｙ＿ｃｒｍ']])(
    'denies the tool name %j, which names no tool of this token (tool_not_allowed)',
    async (tool) => {
      const acme = await h.token('acme-agent', 'crm-mcp');
      const id = callId('odd-tool');
      expectDeny(h, await h.authorize('crm-mcp', { token: acme, tool, arguments: { path: 'acme/x' }, call_id: id }), 403, 'tool_not_allowed');
      await expectNoAllowAnywhere(h, [id]);
    },
  );

  it("ignores a tenant named in a token request: the token's tenant is the authenticated client's", async () => {
    const answer = await h.post('/v1/token', {
      grant_type: 'client_credentials',
      client_id: 'acme-agent',
      client_secret: h.clientSecrets['acme-agent'],
      audience: 'crm-mcp',
      tenant: 'globex',
      tenant_id: 'globex',
      tid: 'globex',
    });
    expect(answer.status).toBe(200);
    expect(claimsOf(answer.body.access_token)).toMatchObject({ tid: 'acme', sub: 'acme-agent' });
  });

  it("refuses a client secret presented for another tenant's principal (invalid_client)", async () => {
    const answer = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'globex-agent', client_secret: h.clientSecrets['acme-agent'], audience: 'crm-mcp' });
    expect([answer.status, answer.body.error]).toEqual([401, 'invalid_client']);
    expect(answer.body).not.toHaveProperty('access_token');
  });

  it('tells apart a principal id two tenants share only by tenant: the bare id authenticates nobody, the qualified one only with its own secret', async () => {
    const grant = (client_id: string, client_secret: string) => h.post('/v1/token', { grant_type: 'client_credentials', client_id, client_secret, audience: 'crm-mcp' });
    for (const [id, secret] of [
      ['agent', shared.acme],
      ['agent', shared.globex],
      ['acme/agent', shared.globex],
      ['globex/agent', shared.acme],
    ] as const) {
      const answer = await grant(id, secret);
      expect([id, answer.status, answer.body.error]).toEqual([id, 401, 'invalid_client']);
    }
    const acme = (await grant('acme/agent', shared.acme)).body.access_token;
    const globex = (await grant('globex/agent', shared.globex)).body.access_token;
    expect(claimsOf(acme)).toMatchObject({ tid: 'acme', sub: 'agent' });
    expect(claimsOf(globex)).toMatchObject({ tid: 'globex', sub: 'agent' });
    expectAllow(h, await h.authorize('crm-mcp', { token: acme, tool: 'query_crm', arguments: { path: 'acme/x' } }), 'acme');
    expectDeny(h, await h.authorize('crm-mcp', { token: acme, tool: 'query_crm', arguments: { path: 'globex/x' } }), 403, 'resource_out_of_scope');

    // Revoking the bare id is refused as ambiguous; revoking acme's leaves globex's working.
    const ambiguous = await h.post('/v1/revoke', { principal: 'agent' }, h.operatorToken);
    expect([ambiguous.status, ambiguous.body.error]).toEqual([400, 'bad_request']);
    expectAllow(h, await h.authorize('crm-mcp', { token: acme, tool: 'query_crm', arguments: { path: 'acme/x' } }), 'acme');
    expect((await h.post('/v1/revoke', { principal: 'acme/agent' }, h.operatorToken)).status).toBe(200);
    expectDeny(h, await h.authorize('crm-mcp', { token: acme, tool: 'query_crm', arguments: { path: 'acme/x' } }), 403, 'principal_revoked');
    expectAllow(h, await h.authorize('crm-mcp', { token: globex, tool: 'query_crm', arguments: { path: 'globex/x' } }), 'globex');
  });

  it("refuses a call id that acme holds open when globex presents it, and acme's call still completes as acme's", async () => {
    const acme = await h.token('acme-agent', 'crm-mcp');
    const globex = await h.token('globex-agent', 'crm-mcp');
    const inFlight = async (tenant: string) => (await h.get(`/v1/tenants/${tenant}`, h.operatorToken)).body.quota.in_flight as number;
    const id = callId('shared-call-id');
    expectAllow(h, await h.authorize('crm-mcp', { token: acme, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id }), 'acme');
    const [acmeHeld, globexHeld] = [await inFlight('acme'), await inFlight('globex')];

    const reused = await h.authorize('crm-mcp', { token: globex, tool: 'query_crm', arguments: { path: 'globex/x' }, call_id: id });
    expectDeny(h, reused, 400, 'bad_request');
    expect((await auditEvents(h, 'globex')).filter((e) => e.call_id === id && e.decision === 'allow')).toEqual([]);
    expect(await inFlight('globex')).toBe(globexHeld);

    expect((await h.post('/v1/complete', { call_id: id, status: 'success' }, h.serverKeys['crm-mcp'])).status).toBe(200);
    expect(await inFlight('acme')).toBe(acmeHeld - 1);
    expect((await auditEvents(h, 'acme')).filter((e) => e.call_id === id).map((e) => e.type)).toEqual(['authorize', 'complete']);
  });

  it('denies a tool the principal has on a server that does not serve it (tool_not_allowed)', async () => {
    const mail = await h.token('acme-agent', 'mail-mcp');
    const id = callId('query-on-mail');
    expectDeny(h, await h.authorize('mail-mcp', { token: mail, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id }), 403, 'tool_not_allowed');
    await expectNoAllowAnywhere(h, [id]);
  });
});

describe("acme's token against globex's resource prefix", () => {
  const block = deniedInAcmeOnly(() => h, 'resource_out_of_scope');

  it.each([
    ['another tenant prefix', 'globex/x'],
    ['dot-dot climb', 'acme/../globex/x'],
    ['percent-encoded dots', 'acme/%2e%2e/globex/x'],
    ['upper-case percent-encoded dots', 'acme/%2E%2E/globex/x'],
    ['double-encoded dots', 'acme/%252e%252e/globex/x'],
    ['encoded slash after dots', 'acme/..%2fglobex/x'],
    ['encoded backslash after dots', 'acme/..%5cglobex/x'],
    ['fullwidth dots and slash', 'acme/．．／globex/x'],
    ['backslashes', 'acme\\..\\globex\\x'],
    ['empty segment before the climb', 'acme//../globex'],
    ['a sibling prefix that starts the same', 'acme-evil/x'],
    ['no separator after the prefix', 'acmeglobex/x'],
    ['NUL byte', 'acme/x\u0000/../../globex/x'],
    ['NUL byte at the end', 'acme/x\u0000'],
    ['absolute path', '/globex/x'],
    ['network path', '//globex/x'],
    ['URL', 'file:///globex/x'],
    ['overlong UTF-8 dot', 'acme/%c0%ae%c0%ae/globex/x'],
    ['zero-width space in the climb', 'acme/.\u200B./globex/x'],
    ['dots and a space', 'acme/.. /globex/x'],
    ['climb above the root', '../x'],
    ['nothing but the prefix climbed away', 'acme/..'],
  ])('denies %s: %j (resource_out_of_scope)', async (_name, path) => {
    const id = callId('prefix');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path }, call_id: id });
    expectDeny(h, answer, 403, 'resource_out_of_scope');
  });

  it.each([
    ['missing', {}],
    ['a number', { path: 7 }],
    ['an array', { path: ['acme/x'] }],
    ['an object', { path: { toString: 'acme/x' } }],
  ])('denies a resource argument that is %s (resource_out_of_scope)', async (_name, args) => {
    const id = callId('prefix-type');
    block.ids.push(id);
    expectDeny(h, await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: args, call_id: id }), 403, 'resource_out_of_scope');
  });

  it('hands the tool the normalised path it checked, with injected fields forced', async () => {
    const answer = await h.authorize('crm-mcp', {
      token: block.acme,
      tool: 'query_crm',
      arguments: { path: 'acme/./reports/%2e%2e/q1//data\\2024', region: 'us-east-1', limit: 5 },
    });
    expectAllow(h, answer, 'acme');
    expect(answer.body.arguments).toEqual({ path: 'acme/q1/data/2024', region: 'eu-west-1', limit: 5 });
  });
});

describe('tenant named in the arguments or the body', () => {
  const block = deniedInAcmeOnly(() => h, 'tenant_override');

  const path = 'acme/reports';
  it.each([
    ['top-level tenant_id', { tenant_id: 'globex' }],
    ['top-level tenant', { tenant: 'globex' }],
    ['top-level tenantId', { tenantId: 'globex' }],
    ['top-level tid', { tid: 'globex' }],
    ['nested', { filter: { owner: { tenant_id: 'globex' } } }],
    ['inside an array', { items: [{ id: 1 }, { tid: 'globex' }] }],
    ['inside nested arrays', { batches: [[{ tenant: 'globex' }]] }],
    ['upper case', { TENANT_ID: 'globex' }],
    ['mixed case', { TenantId: 'globex' }],
    ['kebab case', { 'tenant-id': 'globex' }],
    ['fullwidth letters', { 'ｔｅｎａｎｔ＿ｉｄ': 'globex' }],
    ['a zero-width space inside', { 'ten\u200Bant': 'globex' }],
    ['Tid', { Tid: 'globex' }],
    ['the same tenant in capitals', { tenant_id: 'ACME' }],
    ['the same tenant in fullwidth', { tenant: 'ａｃｍｅ' }],
    ['the same tenant with trailing space', { tenant: 'acme ' }],
    ['null (which may mean "any")', { tenant_id: null }],
    ['a wildcard', { tenant_id: '*' }],
    ['an array holding the same tenant', { tenant_id: ['acme'] }],
    ['an object', { tenant: { id: 'acme' } }],
    ['a second, differing key after a matching one', { tenant_id: 'acme', tid: 'globex' }],
  ])('denies arguments with %s naming another tenant (tenant_override)', async (_name, extra) => {
    const id = callId('override-args');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path, ...extra }, call_id: id });
    expectDeny(h, answer, 403, 'tenant_override');
  });

  it.each([
    ['an escaped key', '{"tenant\\u005fid":"globex"}'],
    ['an escaped key in a nested object', '{"filter":{"\\u0074id":"globex"}}'],
  ])('denies raw JSON arguments with %s naming another tenant (tenant_override)', async (_name, rawArgs) => {
    const id = callId('override-raw');
    block.ids.push(id);
    const raw = `{"token":${JSON.stringify(block.acme)},"tool":"query_crm","call_id":"${id}","arguments":${rawArgs.slice(0, -1)},"path":"${path}"}}`;
    expectDeny(h, await h.post('/v1/authorize', raw, h.serverKeys['crm-mcp']), 403, 'tenant_override');
  });

  // Duplicate keys and __proto__/constructor/prototype never get this far: strict-json-bodies.test.ts
  // and reserved-keys.test.ts prove they are refused as bad_request.

  it('denies a top-level tenant key the body schema does not know, such as TENANT_ID (bad_request, never an allow)', async () => {
    for (const key of ['TENANT_ID', 'Tenant', 'tenant-id']) {
      const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path }, [key]: 'globex' });
      expectDeny(h, answer, 400, 'bad_request');
    }
  });

  it.each([['tenant'], ['tenant_id'], ['tenantId'], ['tid']])('denies %s at the top level of the body naming another tenant (tenant_override)', async (key) => {
    const id = callId('override-body');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path }, call_id: id, [key]: 'globex' });
    expectDeny(h, answer, 403, 'tenant_override');
  });

  it('denies a top-level tenant in capitals even when it is the token\'s own, case-folded (tenant_override)', async () => {
    const id = callId('override-body-case');
    block.ids.push(id);
    expectDeny(h, await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path }, call_id: id, tenant: 'ACME' }), 403, 'tenant_override');
  });

  it("allows the token's own tenant named exactly, at the top level and anywhere in the arguments", async () => {
    const answer = await h.authorize('crm-mcp', {
      token: block.acme,
      tool: 'query_crm',
      tenant: 'acme',
      tid: 'acme',
      arguments: { path, tenant_id: 'acme', filter: { tid: 'acme' }, items: [{ tenant: 'acme' }] },
    });
    expectAllow(h, answer, 'acme');
    expect(answer.body.arguments).toEqual({ path, tenant_id: 'acme', filter: { tid: 'acme' }, items: [{ tenant: 'acme' }], region: 'eu-west-1' });
  });
});

it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
  const scope = await scanScope(h);
  expect(scope.tokens).toBeGreaterThan(5);
  expect(scope.bodies).toBeGreaterThan(50);
  expect(scope.logLines).toBeGreaterThan(50);
  const extra = [
    { label: 'ledger-mcp server key', value: ledgerKey },
    { label: 'secret of acme/agent', value: shared.acme },
    { label: 'secret of globex/agent', value: shared.globex },
  ];
  expect(await findLeaks(h, extra)).toEqual([]);
});
