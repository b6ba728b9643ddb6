import { basicAuth, startHarness, type Harness } from '../support/broker-harness';
import { callId, claimsOf, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Refreshing (RFC 8693-exchanging) a Bulkhead token is the principal's own client asking, authenticated,
 * for the same server. The threat: a compromised MCP server X holds every agent token sent to it; it
 * must not turn one into a token for server Y (and that tenant's credential there), nor keep a session
 * alive on its own. Any other client, a wrong secret, no secret, a stray Bearer → 401 invalid_client; a
 * different audience → invalid_target; and whatever credentials a request presents are verified.
 */

let h: Harness;
const CRM_URL = 'https://crm.example.test/mcp';
const MAIL_URL = 'https://mail.example.test/mcp';

beforeAll(async () => {
  h = await startHarness({
    overrides: (p) => {
      p.servers['crm-mcp'].resource = CRM_URL;
      p.servers['mail-mcp'].resource = MAIL_URL;
    },
  });
});

afterAll(async () => {
  await h?.close();
});

const EXCHANGE = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
const own = () => ({ client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent']! });

/** Asserts an OAuth error with this status and code, and that no token was handed out by it. */
function expectRefused(answer: { status: number; body: any }, status: number, error: string, issuedBefore: number): void {
  expect({ status: answer.status, error: answer.body?.error }).toEqual({ status, error });
  expect(answer.body).not.toHaveProperty('access_token');
  expect(h.issuedTokens.length).toBe(issuedBefore);
}

describe('a refresh needs the principal\'s own client authentication (invalid_client, 401)', () => {
  let stolen: string;
  beforeAll(async () => {
    // The agent's token for crm-mcp, as the (compromised) crm-mcp server sees it.
    stolen = await h.token('acme-agent', 'crm-mcp');
  });

  const cases: Array<[string, () => { body: Record<string, unknown>; form?: boolean; headers?: Record<string, string> }]> = [
    ['no client authentication at all (JSON)', () => ({ body: {} })],
    ['no client authentication at all (form)', () => ({ body: {}, form: true })],
    ["the MCP server's own key as a Bearer", () => ({ body: {}, headers: { authorization: `Bearer ${h.serverKeys['crm-mcp']}` } })],
    ['the subject token itself as a Bearer', () => ({ body: {}, headers: { authorization: `Bearer ${stolen}` } })],
    ['the operator token as a Bearer', () => ({ body: {}, headers: { authorization: `Bearer ${h.operatorToken}` } })],
    ['a client_id without a secret', () => ({ body: { client_id: 'acme-agent' }, form: true })],
    ["its own client id with a wrong secret, in the body", () => ({ body: { client_id: 'acme-agent', client_secret: 'not-the-secret' }, form: true })],
    ["its own client id with a wrong secret, HTTP Basic", () => ({ body: {}, headers: basicAuth('acme-agent', 'not-the-secret') })],
    ["its own client id with an empty Basic secret", () => ({ body: {}, headers: basicAuth('acme-agent', '') })],
    ["the same tenant's other client with its valid secret, in the body", () => ({ body: { client_id: 'acme-reader', client_secret: h.clientSecrets['acme-reader'] } })],
    ["the same tenant's other client with its valid secret, HTTP Basic", () => ({ body: {}, headers: basicAuth('acme-reader', h.clientSecrets['acme-reader']!) })],
    ["the same tenant's other client, tenant-qualified", () => ({ body: { client_id: 'acme/acme-reader', client_secret: h.clientSecrets['acme-reader'] } })],
    ["another tenant's client with its valid secret", () => ({ body: { client_id: 'globex-agent', client_secret: h.clientSecrets['globex-agent'] } })],
    ["another tenant's client, HTTP Basic", () => ({ body: {}, headers: basicAuth('globex-agent', h.clientSecrets['globex-agent']!) })],
    ["its own client id with another client's valid secret", () => ({ body: { client_id: 'acme-agent', client_secret: h.clientSecrets['acme-reader'] } })],
    ["its own id qualified by another tenant", () => ({ body: { client_id: 'globex/acme-agent', client_secret: h.clientSecrets['acme-agent'] } })],
  ];

  it.each(cases)('refuses %s, and issues nothing', async (_label, make) => {
    const { body, form, headers } = make();
    const before = h.issuedTokens.length;
    for (const audience of [undefined, 'crm-mcp', 'mail-mcp']) {
      const answer = await h.tokenRequest({ ...EXCHANGE, subject_token: stolen, ...(audience ? { audience } : {}), ...body }, { form, headers });
      expectRefused(answer, 401, 'invalid_client', before);
      expect(JSON.stringify(answer.body)).not.toContain(stolen);
    }
  });

  it('refuses credentials presented in both places, even when both are right (invalid_request), and issues nothing', async () => {
    const before = h.issuedTokens.length;
    const both = await h.tokenRequest({ ...EXCHANGE, subject_token: stolen, ...own() }, { form: true, headers: basicAuth('acme-agent', h.clientSecrets['acme-agent']!) });
    expectRefused(both, 400, 'invalid_request', before);
    const mismatched = await h.tokenRequest({ ...EXCHANGE, subject_token: stolen, client_id: 'acme-reader' }, { headers: basicAuth('acme-agent', h.clientSecrets['acme-agent']!) });
    expectRefused(mismatched, 400, 'invalid_request', before);
  });

  it('refreshes for its own client, by body, by HTTP Basic and by tenant-qualified id, keeping tenant, principal, session, audience and session start', async () => {
    const old = claimsOf(stolen);
    const ways = [
      { body: own(), form: true },
      { body: {}, headers: basicAuth('acme-agent', h.clientSecrets['acme-agent']!) },
      { body: { client_id: 'acme-agent' }, headers: basicAuth('acme-agent', h.clientSecrets['acme-agent']!) },
      { body: { client_id: 'acme/acme-agent', client_secret: h.clientSecrets['acme-agent'] } },
    ];
    for (const way of ways) {
      const answer = await h.tokenRequest({ ...EXCHANGE, subject_token: stolen, ...way.body }, { form: way.form, headers: way.headers });
      expect(answer.status).toBe(200);
      expect(claimsOf(answer.body.access_token)).toMatchObject({ tid: 'acme', sub: 'acme-agent', sid: old.sid, aud: 'crm-mcp', auth_time: old.auth_time });
    }
  });
});

describe("a refreshed token's audience is the subject token's (invalid_target)", () => {
  const retargets: Array<[string, Record<string, unknown>, string, boolean]> = [
    ['audience of another server', { audience: 'mail-mcp' }, 'invalid_target', false],
    ['resource naming another server by id', { resource: 'mail-mcp' }, 'invalid_target', false],
    ["resource naming another server by its URL", { resource: MAIL_URL }, 'invalid_target', false],
    ["the same audience with another server's resource", { audience: 'crm-mcp', resource: MAIL_URL }, 'invalid_target', false],
    ['an unknown server', { audience: 'billing-mcp' }, 'invalid_target', false],
    ['an audience array (JSON)', { audience: ['crm-mcp', 'mail-mcp'] }, 'invalid_request', false],
    ['a one-element audience array (JSON)', { audience: ['mail-mcp'] }, 'invalid_request', false],
    ['a repeated audience parameter (form)', { audience: ['crm-mcp', 'mail-mcp'] }, 'invalid_request', true],
    ['a repeated resource parameter (form)', { resource: [CRM_URL, MAIL_URL] }, 'invalid_request', true],
  ];

  it.each(retargets)('refuses %s even to the principal\'s own client, and the stolen token stays useless at the other server', async (_label, fields, error, form) => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const before = h.issuedTokens.length;
    const answer = await h.tokenRequest({ ...EXCHANGE, subject_token: token, ...own(), ...fields }, { form });
    expectRefused(answer, 400, error, before);
    // And the token itself cannot be spent at mail-mcp.
    const id = callId('retarget');
    expectDeny(h, await h.authorize('mail-mcp', { token, tool: 'send_email', arguments: { to: 'x@example.com' }, call_id: id }), 403, 'audience_mismatch');
    await expectNoAllowAnywhere(h, [id]);
  });

  it('accepts the same server named by audience, by id as resource, by its URL (with a trailing slash), or not at all', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    for (const fields of [{}, { audience: 'crm-mcp' }, { resource: 'crm-mcp' }, { resource: `${CRM_URL}/` }, { audience: 'crm-mcp', resource: CRM_URL }]) {
      const answer = await h.tokenRequest({ ...EXCHANGE, subject_token: token, ...own(), ...fields });
      expect([answer.status, claimsOf(answer.body.access_token).aud]).toEqual([200, 'crm-mcp']);
    }
  });

  it('keeps the audience down a chain of refreshes, and refuses a switch at any depth', async () => {
    const first = await h.token('acme-agent', 'crm-mcp');
    let current = first;
    for (let depth = 1; depth <= 4; depth++) {
      const before = h.issuedTokens.length;
      expectRefused(await h.tokenRequest({ ...EXCHANGE, subject_token: current, ...own(), audience: 'mail-mcp' }), 400, 'invalid_target', before);
      expectRefused(await h.tokenRequest({ ...EXCHANGE, subject_token: current }), 401, 'invalid_client', before);
      const next = await h.tokenRequest({ ...EXCHANGE, subject_token: current, ...own() });
      expect(next.status).toBe(200);
      current = next.body.access_token;
      expect(claimsOf(current)).toMatchObject({ aud: 'crm-mcp', sid: claimsOf(first).sid, auth_time: claimsOf(first).auth_time });
    }
    expectAllow(h, await h.authorize('crm-mcp', { token: current, tool: 'query_crm', arguments: { path: 'acme/x' } }), 'acme');
  });
});

describe('presented credentials are never ignored', () => {
  it('verifies them on every grant, before the grant is even looked at (invalid_client, 401)', async () => {
    const before = h.issuedTokens.length;
    const wrong = { client_id: 'acme-agent', client_secret: 'not-the-secret' };
    for (const body of [{ grant_type: 'password', ...wrong }, { ...wrong }, { grant_type: 'client_credentials', audience: 'crm-mcp', ...wrong }]) {
      expectRefused(await h.tokenRequest(body, { form: true }), 401, 'invalid_client', before);
    }
    expectRefused(await h.tokenRequest({ grant_type: 'password' }, { headers: basicAuth('acme-agent', 'nope') }), 401, 'invalid_client', before);
    const bearer = await h.tokenRequest({ grant_type: 'client_credentials', audience: 'crm-mcp', ...own() }, { headers: { authorization: `Bearer ${h.serverKeys['crm-mcp']}` } });
    expectRefused(bearer, 401, 'invalid_client', before);
    expect(bearer.headers.get('www-authenticate')).toMatch(/^Basic /);
  });
});

describe('secrets', () => {
  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});
