import { SignJWT } from 'jose';
import { SECURITY_STREAM } from '../../src/audit/security-stream';
import { sha256Hex } from '../../src/crypto/hash';
import { basicAuth, startHarness, type Harness } from '../support/broker-harness';
import { startIdps, type Idp } from '../support/idp-server';
import { auditEvents, callId, claimsOf, expectAllow } from '../support/isolation-assertions';

/**
 * RFC 7523 jwt-bearer over real HTTP, with real issuers on 127.0.0.1 (each a JWKS the broker fetches):
 * a Kubernetes cluster's service-account tokens and a SPIFFE trust domain's JWT-SVIDs (workload_issuers),
 * and two tenant IdPs issuing ID-JAGs (acme opted in with idp.id_jag, globex not). Required: the tenant
 * and principal come only from policy's (issuer, subject) mapping or the verified IdP issuer — never
 * from a claim — and every assertion that policy did not vouch for (audience, issuer, key, type,
 * lifetime, subject, client, replay) is refused before anything is issued.
 */

const GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ID_JAG = 'oauth-id-jag+jwt';

let h: Harness;
let idps: Record<string, Idp>;
let closeIdps: () => Promise<void>;
const now = () => Math.floor(Date.now() / 1000);
let jti = 0;

beforeAll(async () => {
  ({ idps, close: closeIdps } = await startIdps(['cluster', 'spire', 'acme', 'globex']));
  h = await startHarness({
    overrides: (p) => {
      p.workload_issuers = {
        cluster: { issuer: idps.cluster!.issuer, jwks_uri: idps.cluster!.jwksUri, audience: 'bulkhead', kind: 'kubernetes' },
        spire: { issuer: idps.spire!.issuer, jwks_uri: idps.spire!.jwksUri, audience: 'spiffe://bulkhead.example', kind: 'spiffe' },
      };
      p.tenants.acme.principals['acme-batch'] = { workload: { issuer: 'cluster', subject: 'system:serviceaccount:acme:batch' }, tools: ['query_crm'] };
      p.tenants.globex.principals['globex-batch'] = { workload: { issuer: 'cluster', subject: 'system:serviceaccount:globex:batch' }, tools: ['query_crm', 'export_report'] };
      p.tenants.globex.principals['globex-svid'] = { workload: { issuer: 'spire', subject: 'spiffe://globex.example/agent' }, tools: ['query_crm'] };
      p.tenants.acme.idp = { issuer: idps.acme!.issuer, jwks_uri: idps.acme!.jwksUri, audience: 'bulkhead', scope: ['query_crm', 'send_email'], id_jag: true };
      p.tenants.globex.idp = { issuer: idps.globex!.issuer, jwks_uri: idps.globex!.jwksUri, audience: 'bulkhead' };
    },
  });
});

afterAll(async () => {
  await h?.close();
  await closeIdps?.();
});

const grant = (assertion: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}) =>
  h.tokenRequest({ grant_type: GRANT, assertion, audience: 'crm-mcp', ...extra }, { form: true, headers });

/** A projected service-account token as a cluster issues it: audience bulkhead, an hour. */
const serviceAccountToken = (subject: string, claims: Record<string, unknown> = {}) =>
  idps.cluster!.sign({ sub: subject, aud: 'bulkhead', exp: now() + 3607, 'kubernetes.io': { namespace: subject.split(':')[2] }, ...claims }, now());

/** An ID-JAG from acme's IdP for acme's client acme-agent, for the broker's issuer. */
const idJag = (claims: Record<string, unknown> = {}, idp = 'acme', typ = ID_JAG) =>
  idps[idp]!.sign({ aud: h.policy.broker.issuer, sub: 'alice@acme.example', client_id: 'acme-agent', jti: `jag-${++jti}`, scope: 'query_crm', ...claims }, now(), { typ });

const acmeAgent = () => basicAuth('acme-agent', h.clientSecrets['acme-agent']!);

function expectRefused(answer: { status: number; body: any }, error: string, assertion?: string): void {
  expect({ status: answer.status, error: answer.body.error }).toEqual({ status: error === 'invalid_client' ? 401 : 400, error });
  expect(answer.body.access_token).toBeUndefined();
  // An error never quotes what was presented.
  if (assertion) expect(JSON.stringify(answer.body)).not.toContain(assertion.split('.')[1]!.slice(0, 24));
}

describe('workload identity tokens (Kubernetes service accounts, SPIFFE JWT-SVIDs)', () => {
  it('maps a service-account token to the principal policy names for (issuer, subject), whatever its claims say', async () => {
    const assertion = await serviceAccountToken('system:serviceaccount:acme:batch', { tid: 'globex', client_id: 'globex-agent' });
    const answer = await grant(assertion);
    expect(answer.status).toBe(200);
    const claims = claimsOf(answer.body.access_token);
    expect(claims).toMatchObject({ tid: 'acme', sub: 'acme-batch', client_id: 'acme/acme-batch', aud: 'crm-mcp', scope: 'query_crm' });
    // The token works on the real path, in acme's lane only.
    expectAllow(h, await h.authorize('crm-mcp', { token: answer.body.access_token, tool: 'query_crm', arguments: { path: 'acme/customers' }, call_id: callId('jwt-bearer') }), 'acme');
  });

  it('keeps two tenants apart on one shared cluster, and scopes the mapping by issuer', async () => {
    const globex = await grant(await serviceAccountToken('system:serviceaccount:globex:batch'));
    expect(claimsOf(globex.body.access_token)).toMatchObject({ tid: 'globex', sub: 'globex-batch' });
    const svid = await grant(await idps.spire!.sign({ sub: 'spiffe://globex.example/agent', aud: 'spiffe://bulkhead.example' }, now()));
    expect(claimsOf(svid.body.access_token)).toMatchObject({ tid: 'globex', sub: 'globex-svid' });
    // acme's service-account subject, but signed by the SPIFFE issuer: that issuer vouches for no such subject.
    expectRefused(await grant(await idps.spire!.sign({ sub: 'system:serviceaccount:acme:batch', aud: 'spiffe://bulkhead.example' }, now())), 'invalid_grant');
  });

  it.each([
    ['another audience', { aud: 'kubernetes.default.svc' }, undefined],
    ['the broker issuer as audience (not this issuer\'s configured one)', { aud: 'http://bulkhead.invalid' }, undefined],
    ['expired', { iat: now() - 7200, exp: now() - 3600 }, undefined],
    ['no expiry (a legacy, non-expiring token)', { exp: undefined }, undefined],
    ['valid for longer than max_lifetime (24h)', { exp: now() + 25 * 3600 }, undefined],
    ['not yet valid', { nbf: now() + 3600 }, undefined],
    ['a subject policy maps to nobody', { sub: 'system:serviceaccount:acme:intruder' }, undefined],
    ['a subject that differs only in case', { sub: 'system:serviceaccount:ACME:batch' }, undefined],
    ['typed as an ID-JAG', {}, ID_JAG],
  ] as Array<[string, Record<string, unknown>, string | undefined]>)('refuses a service-account token with %s', async (_what, claims, typ) => {
    const assertion = typ
      ? await idps.cluster!.sign({ sub: 'system:serviceaccount:acme:batch', exp: now() + 600, ...claims }, now(), { typ })
      : await serviceAccountToken('system:serviceaccount:acme:batch', claims);
    expectRefused(await grant(assertion), 'invalid_grant', assertion);
  });

  it('refuses forged assertions: another issuer\'s key, an unknown issuer, HS256, alg none, garbage', async () => {
    const byOtherKey = await idps.spire!.sign({ iss: idps.cluster!.issuer, sub: 'system:serviceaccount:acme:batch', exp: now() + 600 }, now());
    const unknownIssuer = await idps.spire!.sign({ iss: 'https://evil.example', sub: 'system:serviceaccount:acme:batch', exp: now() + 600 }, now());
    const hs256 = await new SignJWT({ iss: idps.cluster!.issuer, aud: 'bulkhead', sub: 'system:serviceaccount:acme:batch', exp: now() + 600 })
      .setProtectedHeader({ alg: 'HS256', kid: 'cluster-1' })
      .sign(new TextEncoder().encode('the JWKS is public, so is this'));
    const body = Buffer.from(JSON.stringify({ iss: idps.cluster!.issuer, aud: 'bulkhead', sub: 'system:serviceaccount:acme:batch', exp: now() + 600 })).toString('base64url');
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${body}.`;
    for (const assertion of [byOtherKey, unknownIssuer, hs256, none]) expectRefused(await grant(assertion), 'invalid_grant', assertion);
    for (const junk of ['not-a-jwt', 'a.b.c', '']) {
      const answer = await grant(junk);
      expect(answer.status).toBe(400);
      expect(answer.body.access_token).toBeUndefined();
    }
  });

  it('refuses another principal\'s client credentials next to the assertion, and a workload-only principal on client_credentials', async () => {
    const assertion = await serviceAccountToken('system:serviceaccount:acme:batch');
    expectRefused(await grant(assertion, {}, basicAuth('acme-reader', h.clientSecrets['acme-reader']!)), 'invalid_client');
    for (const secret of ['', 'anything', h.clientSecrets['acme-agent']!]) {
      const answer = await h.tokenRequest({ grant_type: 'client_credentials', client_id: 'acme/acme-batch', client_secret: secret, audience: 'crm-mcp' });
      expect(answer.status).toBe(answer.body.error === 'invalid_request' ? 400 : 401);
      expect(answer.body.access_token).toBeUndefined();
    }
  });

  it('issues nothing for a revoked workload principal (principal revocations are checked on this grant too)', async () => {
    expect((await grant(await serviceAccountToken('system:serviceaccount:acme:batch'))).status).toBe(200);
    const revoke = await h.post('/v1/revoke', { principal: 'acme/acme-batch', reason: 'jwt-bearer test' }, h.operatorToken);
    expect(revoke.status).toBe(200);
    expectRefused(await grant(await serviceAccountToken('system:serviceaccount:acme:batch')), 'invalid_grant');
    // Its tenant's other workload principal is untouched.
    expect((await grant(await serviceAccountToken('system:serviceaccount:globex:batch'))).status).toBe(200);
  });

  it('answers 503 while the issuer\'s keys cannot be fetched, without touching another issuer', async () => {
    const fresh = await startIdps(['down']);
    try {
      const down = await startHarness({
        overrides: (p) => {
          p.workload_issuers = {
            down: { issuer: fresh.idps.down!.issuer, jwks_uri: fresh.idps.down!.jwksUri, audience: 'bulkhead', kind: 'kubernetes' },
            cluster: { issuer: idps.cluster!.issuer, jwks_uri: idps.cluster!.jwksUri, audience: 'bulkhead', kind: 'kubernetes' },
          };
          p.tenants.acme.principals['acme-batch'] = { workload: { issuer: 'down', subject: 'system:serviceaccount:acme:batch' }, tools: ['query_crm'] };
          p.tenants.globex.principals['globex-batch'] = { workload: { issuer: 'cluster', subject: 'system:serviceaccount:globex:batch' }, tools: ['query_crm'] };
        },
      });
      try {
        fresh.idps.down!.mode = 'status-500';
        const assertion = await fresh.idps.down!.sign({ sub: 'system:serviceaccount:acme:batch', exp: now() + 600 }, now());
        const refused = await down.tokenRequest({ grant_type: GRANT, assertion, audience: 'crm-mcp' }, { form: true });
        expect({ status: refused.status, error: refused.body.error }).toEqual({ status: 503, error: 'temporarily_unavailable' });
        const other = await down.tokenRequest({ grant_type: GRANT, assertion: await serviceAccountToken('system:serviceaccount:globex:batch'), audience: 'crm-mcp' }, { form: true });
        expect(claimsOf(other.body.access_token)).toMatchObject({ tid: 'globex', sub: 'globex-batch' });
      } finally {
        await down.close();
      }
    } finally {
      await fresh.close();
    }
  });
});

describe('ID-JAG (enterprise-managed authorization) from a tenant IdP', () => {
  it('issues a token for the person, to the client the IdP named, within the assertion\'s scope', async () => {
    const answer = await grant(await idJag({ tid: 'globex' }), {}, acmeAgent());
    expect(answer.status).toBe(200);
    expect(claimsOf(answer.body.access_token)).toMatchObject({ tid: 'acme', sub: 'alice@acme.example', client_id: 'acme-agent', aud: 'crm-mcp', scope: 'query_crm' });
  });

  it('is single use: the same assertion twice is a replay', async () => {
    const assertion = await idJag();
    expect((await grant(assertion, {}, acmeAgent())).status).toBe(200);
    expectRefused(await grant(assertion, {}, acmeAgent()), 'invalid_grant', assertion);
  });

  it('needs the authenticated client the assertion was issued to', async () => {
    expectRefused(await grant(await idJag()), 'invalid_client');
    expectRefused(await grant(await idJag(), {}, basicAuth('globex-agent', h.clientSecrets['globex-agent']!)), 'invalid_client');
    expectRefused(await grant(await idJag(), {}, basicAuth('acme-reader', h.clientSecrets['acme-reader']!)), 'invalid_grant');
    expectRefused(await grant(await idJag(), {}, basicAuth('acme-agent', 'wrong')), 'invalid_client');
  });

  it.each([
    ['typed as an ID token (typ JWT)', {}, 'acme', 'JWT'],
    ['without a type', {}, 'acme', undefined],
    ['for the IdP audience, not this broker', { aud: 'bulkhead' }, 'acme', ID_JAG],
    ['without a jti', { jti: undefined }, 'acme', ID_JAG],
    ['without a client_id', { client_id: undefined }, 'acme', ID_JAG],
    ['expired', { iat: now() - 900, exp: now() - 600 }, 'acme', ID_JAG],
    ['from a tenant IdP that did not opt in (globex)', { client_id: 'globex-agent' }, 'globex', ID_JAG],
  ])('refuses an ID-JAG %s', async (_what, claims, idp, typ) => {
    const assertion = typ === undefined
      ? await idps[idp]!.sign({ aud: h.policy.broker.issuer, sub: 'alice@acme.example', client_id: 'acme-agent', jti: `jag-${++jti}`, ...claims }, now())
      : await idJag(claims, idp, typ);
    const client = idp === 'globex' ? basicAuth('globex-agent', h.clientSecrets['globex-agent']!) : acmeAgent();
    expectRefused(await grant(assertion, {}, client), 'invalid_grant', assertion);
  });

  it('never widens: a scope or a server outside the assertion is refused', async () => {
    const narrow = await grant(await idJag({ scope: 'query_crm' }), { scope: 'send_email' }, acmeAgent());
    expect(narrow.body.error).toBe('invalid_scope');
    // Bound to crm-mcp by its resource, it cannot be aimed at mail-mcp.
    const aimed = await grant(await idJag({ scope: 'send_email', resource: 'crm-mcp' }), { audience: 'mail-mcp' }, acmeAgent());
    expect(aimed.body.error).toBe('invalid_target');
    const bound = await h.tokenRequest({ grant_type: GRANT, assertion: await idJag({ scope: 'send_email', resource: 'mail-mcp' }) }, { form: true, headers: acmeAgent() });
    expect(claimsOf(bound.body.access_token)).toMatchObject({ aud: 'mail-mcp', scope: 'send_email' });
  });
});

describe('every refusal is recorded where its signature says', () => {
  /** Runs `attempt` and returns the one record it added to each stream (undefined where none). */
  async function recorded(attempt: () => Promise<{ status: number }>): Promise<Record<string, any>> {
    const streams = ['acme', 'globex', 'initech', SECURITY_STREAM];
    const before = Object.fromEntries(await Promise.all(streams.map(async (s) => [s, (await auditEvents(h, s)).length] as const)));
    expect((await attempt()).status).toBeGreaterThanOrEqual(400);
    const added: Record<string, any> = {};
    for (const s of streams) {
      const events = await auditEvents(h, s);
      expect(events.length - before[s]!).toBeLessThanOrEqual(1);
      if (events.length > before[s]!) added[s] = events[events.length - 1];
    }
    expect(Object.keys(added)).toHaveLength(1);
    return added;
  }

  it('an expired service-account token of a mapped subject: in that tenant\'s stream, as token_expired', async () => {
    const added = await recorded(async () => grant(await serviceAccountToken('system:serviceaccount:globex:batch', { iat: now() - 7200, exp: now() - 3600 })));
    expect(added.globex).toMatchObject({ decision: 'deny', reason: 'token_expired', principal: 'globex-batch' });
  });

  it('a signed service-account token of a mapped subject that lives too long: in that tenant\'s stream', async () => {
    const added = await recorded(async () => grant(await serviceAccountToken('system:serviceaccount:globex:batch', { exp: now() + 25 * 3600 })));
    expect(added.globex).toMatchObject({ decision: 'deny', reason: 'token_invalid', principal: 'globex-batch', detail: expect.stringMatching(/max_lifetime/) });
  });

  it('a token no trusted key signed, claiming a mapped subject: in _security with its fingerprint, never in the tenant', async () => {
    const forged = await idps.spire!.sign({ iss: idps.cluster!.issuer, sub: 'system:serviceaccount:globex:batch', exp: now() + 600 }, now());
    const added = await recorded(() => grant(forged));
    expect(added[SECURITY_STREAM]).toMatchObject({ decision: 'deny', reason: 'token_invalid', token_sha256: sha256Hex(forged) });
    expect(JSON.stringify(added)).not.toContain(forged.split('.')[2]);
  });

  it('an ID-JAG replay: in acme\'s stream; an ID-JAG for another audience: in acme\'s, as audience_mismatch', async () => {
    const assertion = await idJag();
    expect((await grant(assertion, {}, acmeAgent())).status).toBe(200);
    expect((await recorded(() => grant(assertion, {}, acmeAgent()))).acme).toMatchObject({ reason: 'token_invalid', detail: expect.stringMatching(/already used/) });
    expect((await recorded(async () => grant(await idJag({ aud: 'bulkhead' }), {}, acmeAgent()))).acme).toMatchObject({ reason: 'audience_mismatch' });
  });
});

it('advertises the grant in the authorization server metadata', async () => {
  const metadata = await h.get('/.well-known/oauth-authorization-server');
  expect(metadata.body.grant_types_supported).toContain(GRANT);
});
