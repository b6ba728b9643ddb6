import { OAuthError } from '../../../src/tokens/oauth-error';
import { createTokenService, type TokenService } from '../../../src/tokens/token-service';
import { MINUTE, SECRETS, revocationStub, tempDir, testPolicy, tokenKit } from './fixtures';

type Kit = Awaited<ReturnType<typeof tokenKit>>;

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

async function oauthFailure(promise: Promise<unknown>): Promise<{ error: string; error_description: string; status: number }> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof OAuthError) return { error: err.error, error_description: err.error_description, status: err.status };
    throw err;
  }
  throw new Error('expected an OAuth error');
}

describe('token endpoint: client_credentials', () => {
  let cleanup: () => Promise<void>;
  let kit: Kit;
  let service: TokenService;
  let revocations: ReturnType<typeof revocationStub>;

  beforeEach(async () => {
    const temp = await tempDir();
    cleanup = temp.cleanup;
    kit = await tokenKit(temp.dir);
    revocations = revocationStub();
    service = createTokenService({ policy: testPolicy(), issuer: kit.issuer, verifier: kit.verifier, revocations, clock: kit.clock });
  });
  afterEach(() => cleanup());

  const credentials = (extra: Record<string, unknown> = {}) => ({
    grant_type: 'client_credentials',
    client_id: 'acme-agent',
    client_secret: SECRETS.acmeAgent,
    audience: 'crm-mcp',
    ...extra,
  });

  it('issues a Bearer token for the principal\'s tenant with every tool it may use on that server', async () => {
    const answer = await service.grant(credentials());
    expect(answer).toMatchObject({ token_type: 'Bearer', expires_in: 15 * 60, scope: 'query_crm export_report' });
    const verified = await kit.verifier.verify(answer.access_token, 'crm-mcp');
    expect(verified).toMatchObject({ tenant: 'acme', principal: 'acme-agent', scope: ['query_crm', 'export_report'] });
  });

  it('accepts HTTP Basic client authentication', async () => {
    const { client_id: _id, client_secret: _secret, ...rest } = credentials();
    const answer = await service.grant(rest, { id: 'acme-agent', secret: SECRETS.acmeAgent });
    expect((await kit.verifier.verify(answer.access_token, 'crm-mcp')).tenant).toBe('acme');
  });

  it('gives byte-identical answers for an unknown client, a wrong secret, and an ambiguous client id', async () => {
    const answers = await Promise.all([
      oauthFailure(service.grant(credentials({ client_id: 'nobody' }))),
      oauthFailure(service.grant(credentials({ client_secret: 'wrong' }))),
      oauthFailure(service.grant(credentials({ client_secret: SECRETS.betaAgent }))),
      oauthFailure(service.grant(credentials({ client_id: 'shared', client_secret: SECRETS.acmeShared }))),
      oauthFailure(service.grant(credentials({ client_id: 'beta/acme-agent' }))),
      oauthFailure(service.grant(credentials({ client_id: 'constructor' }))),
      oauthFailure(service.grant({ grant_type: 'client_credentials', audience: 'crm-mcp' }, { id: 'acme-agent', secret: 'wrong' })),
    ]);
    const expected = JSON.stringify({ error: 'invalid_client', error_description: 'client authentication failed', status: 401 });
    for (const answer of answers) expect(JSON.stringify(answer)).toBe(expected);
  });

  it('tells a principal id shared by two tenants apart only by tenant/principal', async () => {
    const acme = await service.grant(credentials({ client_id: 'acme/shared', client_secret: SECRETS.acmeShared }));
    expect(await kit.verifier.verify(acme.access_token, 'crm-mcp')).toMatchObject({ tenant: 'acme', principal: 'shared', scope: ['query_crm'] });
    const beta = await service.grant(credentials({ client_id: 'beta/shared', client_secret: SECRETS.betaShared }));
    expect(await kit.verifier.verify(beta.access_token, 'crm-mcp')).toMatchObject({ tenant: 'beta', principal: 'shared', scope: ['send_email'] });
    // Tenant A's secret never authenticates tenant B's principal of the same name.
    expect((await oauthFailure(service.grant(credentials({ client_id: 'beta/shared', client_secret: SECRETS.acmeShared })))).error).toBe('invalid_client');
  });

  it('refuses two client authentication methods at once', async () => {
    const answer = await oauthFailure(service.grant(credentials(), { id: 'acme-agent', secret: SECRETS.acmeAgent }));
    expect(answer).toMatchObject({ error: 'invalid_request', status: 400 });
  });

  it('narrows scope on request and never widens it', async () => {
    const narrowed = await service.grant(credentials({ scope: 'export_report' }));
    expect(narrowed.scope).toBe('export_report');
    // send_email is on the server and in the tenant, but not the principal's; charge is the principal's, not the server's.
    for (const scope of ['query_crm send_email', 'charge', 'query_crm admin', '']) {
      expect(await oauthFailure(service.grant(credentials({ scope })))).toMatchObject({ error: 'invalid_scope', status: 400 });
    }
  });

  it('refuses when nothing is left after intersecting principal, tenant and server tools', async () => {
    const answer = await oauthFailure(service.grant(credentials({ client_id: 'beta/shared', client_secret: SECRETS.betaShared, audience: 'billing-mcp' })));
    expect(answer.error).toBe('invalid_scope');
  });

  it('requires an audience that is a known server (audience or RFC 8707 resource)', async () => {
    expect(await oauthFailure(service.grant(credentials({ audience: undefined })))).toMatchObject({ error: 'invalid_target', status: 400 });
    expect(await oauthFailure(service.grant(credentials({ audience: 'unknown-mcp' })))).toMatchObject({ error: 'invalid_target' });
    expect(await oauthFailure(service.grant(credentials({ audience: 'constructor' })))).toMatchObject({ error: 'invalid_target' });
    expect(await oauthFailure(service.grant(credentials({ audience: 'crm-mcp', resource: 'billing-mcp' })))).toMatchObject({ error: 'invalid_target' });
    const viaResource = await service.grant(credentials({ audience: undefined, resource: 'billing-mcp' }));
    expect((await kit.verifier.verify(viaResource.access_token, 'billing-mcp')).scope).toEqual(['query_crm', 'charge']);
  });

  it('maps an RFC 8707 resource given as the MCP server\'s URL to that server, and no further', async () => {
    const viaUrl = await service.grant(credentials({ audience: undefined, resource: 'https://crm.example.com/mcp/' }));
    expect((await kit.verifier.verify(viaUrl.access_token, 'crm-mcp')).audience).toBe('crm-mcp');
    expect(await oauthFailure(service.grant(credentials({ audience: 'billing-mcp', resource: 'https://crm.example.com/mcp' })))).toMatchObject({ error: 'invalid_target' });
    expect(await oauthFailure(service.grant(credentials({ audience: undefined, resource: 'https://crm.example.com/other' })))).toMatchObject({ error: 'invalid_target' });
  });

  it('grants the expires_in asked for, clamped to max_token_ttl (and says so), and refuses malformed ones', async () => {
    expect((await service.grant(credentials({ expires_in: '60' }))).expires_in).toBe(60);
    expect((await service.grant(credentials({ expires_in: 1800 }))).expires_in).toBe(1800);
    expect((await service.grant(credentials({ expires_in: 7200 }))).expires_in).toBe(60 * 60);
    expect((await service.grant(credentials({ expires_in: '99999999999999999999' }))).expires_in).toBe(60 * 60);
    for (const bad of ['-5', '0', 0, -1, 1.5, '1.5', '1e3', ' 60'])
      expect(await oauthFailure(service.grant(credentials({ expires_in: bad })))).toMatchObject({ error: 'invalid_request', error_description: 'expires_in is invalid' });
  });

  it('names the offending field and never repeats a presented secret', async () => {
    expect(await oauthFailure(service.grant({}))).toMatchObject({ error: 'invalid_request', error_description: 'grant_type is required' });
    // Presented credentials are checked before anything else: a client_id with no secret authenticates nobody.
    expect(await oauthFailure(service.grant({ client_id: 'acme-agent' }))).toMatchObject({ error: 'invalid_client', status: 401 });
    expect(await oauthFailure(service.grant({ grant_type: 'password' }))).toMatchObject({ error: 'unsupported_grant_type' });
    const answer = await oauthFailure(service.grant(credentials({ client_secret: ['a', SECRETS.acmeAgent] })));
    expect(answer).toMatchObject({ error: 'invalid_request', error_description: 'client_secret is invalid' });
    expect(JSON.stringify(answer)).not.toContain(SECRETS.acmeAgent);
  });

  it('refuses tokens to a revoked principal or tenant', async () => {
    revocations.revoke({ kind: 'principal', tenant: 'acme', principal: 'acme-agent' });
    expect(await oauthFailure(service.grant(credentials()))).toMatchObject({ error: 'invalid_grant' });
    revocations.revoke({ kind: 'tenant', tenant: 'beta' });
    expect(await oauthFailure(service.grant(credentials({ client_id: 'beta-agent', client_secret: SECRETS.betaAgent })))).toMatchObject({ error: 'invalid_grant' });
  });
});

describe('token endpoint: refresh by token exchange', () => {
  let cleanup: () => Promise<void>;
  let kit: Kit;
  let service: TokenService;
  let revocations: ReturnType<typeof revocationStub>;
  let first: { access_token: string };

  beforeEach(async () => {
    const temp = await tempDir();
    cleanup = temp.cleanup;
    kit = await tokenKit(temp.dir);
    revocations = revocationStub();
    service = createTokenService({ policy: () => testPolicy(), issuer: kit.issuer, verifier: kit.verifier, revocations, clock: kit.clock });
    first = await service.grant({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: SECRETS.acmeAgent, audience: 'crm-mcp' });
  });
  afterEach(() => cleanup());

  const asAgent = { client_id: 'acme-agent', client_secret: SECRETS.acmeAgent };
  const refresh = (extra: Record<string, unknown> = {}) => service.grant({ grant_type: EXCHANGE, subject_token: first.access_token, subject_token_type: ACCESS_TOKEN, ...asAgent, ...extra });

  it('keeps the session, tenant and principal, with a new jti and a fresh lifetime', async () => {
    const old = await kit.verifier.verify(first.access_token, 'crm-mcp');
    kit.clock.advance(10 * MINUTE);
    const answer = await refresh();
    expect(answer.issued_token_type).toBe(ACCESS_TOKEN);
    const renewed = await kit.verifier.verify(answer.access_token, 'crm-mcp');
    expect(renewed).toMatchObject({ tenant: 'acme', principal: 'acme-agent', session: old.session, scope: old.scope });
    expect(renewed.jti).not.toBe(old.jti);
    expect(renewed.expiresAt).toBeGreaterThan(old.expiresAt);
  });

  it('narrows to the old token\'s scope and never widens it, and never re-aims it at another server', async () => {
    const narrowed = await service.grant({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: SECRETS.acmeAgent, audience: 'crm-mcp', scope: 'query_crm' });
    const again = await service.grant({ grant_type: EXCHANGE, subject_token: narrowed.access_token, subject_token_type: ACCESS_TOKEN, ...asAgent });
    expect(again.scope).toBe('query_crm');
    const wider = service.grant({ grant_type: EXCHANGE, subject_token: narrowed.access_token, subject_token_type: ACCESS_TOKEN, ...asAgent, scope: 'query_crm export_report' });
    expect(await oauthFailure(wider)).toMatchObject({ error: 'invalid_scope' });
    // The principal may use billing-mcp, but a refresh keeps the subject token's audience.
    expect(await oauthFailure(refresh({ audience: 'billing-mcp' }))).toMatchObject({ error: 'invalid_target' });
    expect(await oauthFailure(refresh({ audience: 'unknown-mcp' }))).toMatchObject({ error: 'invalid_target' });
    expect(await oauthFailure(refresh({ client_secret: undefined, client_id: undefined }))).toMatchObject({ error: 'invalid_client', status: 401 });
  });

  const targets = {
    session: (t: { session: string }) => ({ kind: 'session', session: t.session }) as const,
    token: (t: { jti: string }) => ({ kind: 'jti', jti: t.jti }) as const,
    principal: () => ({ kind: 'principal', tenant: 'acme', principal: 'acme-agent' }) as const,
    tenant: () => ({ kind: 'tenant', tenant: 'acme' }) as const,
  };
  it.each(Object.keys(targets) as Array<keyof typeof targets>)('is refused once its %s is revoked', async (which) => {
    const old = await kit.verifier.verify(first.access_token, 'crm-mcp');
    await expect(refresh()).resolves.toMatchObject({ token_type: 'Bearer' });
    revocations.revoke(targets[which](old));
    expect(await oauthFailure(refresh())).toMatchObject({ error: 'invalid_grant', status: 400 });
  });

  it('is refused for an expired or forged subject token', async () => {
    const [header, payload, signature] = first.access_token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const forged = [header, Buffer.from(JSON.stringify({ ...claims, tid: 'beta' })).toString('base64url'), signature].join('.');
    expect(await oauthFailure(service.grant({ grant_type: EXCHANGE, subject_token: forged, subject_token_type: ACCESS_TOKEN, ...asAgent }))).toMatchObject({ error: 'invalid_grant' });
    kit.clock.advance(16 * MINUTE);
    expect(await oauthFailure(refresh())).toMatchObject({ error: 'invalid_grant', error_description: 'subject_token has expired' });
  });

  it('validates the exchange parameters and names the field', async () => {
    expect(await oauthFailure(service.grant({ grant_type: EXCHANGE, subject_token_type: ACCESS_TOKEN }))).toMatchObject({ error_description: 'subject_token is required' });
    expect(await oauthFailure(refresh({ subject_token_type: 'urn:x:saml' }))).toMatchObject({ error: 'invalid_request', error_description: 'subject_token_type is invalid' });
    expect(await oauthFailure(refresh({ actor_token: first.access_token }))).toMatchObject({ error: 'invalid_request' });
    expect(await oauthFailure(refresh({ subject_token: 'not-a-jwt' }))).toMatchObject({ error: 'invalid_grant' });
  });
});
