import type * as OAuth4WebApi from 'oauth4webapi' with { 'resolution-mode': 'import' };
// oauth4webapi is ESM-only; jest (and Node 24's require) load it as CommonJS.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const oauth = require('oauth4webapi') as typeof OAuth4WebApi;
import { startHarness, type Harness } from '../support/broker-harness';
import { freePort } from '../support/free-port';
import { startIdps, type Idp } from '../support/idp-server';

/**
 * A standard OAuth client nobody on the project wrote (panva's oauth4webapi, strict about every RFC
 * it implements) against the broker: RFC 8414 discovery, client credentials with an RFC 8707 resource,
 * RFC 8693 token exchange, and RFC 9068 validation of the access tokens as a resource server would do
 * it. Then the audience rules from the other side: a token for one server is refused by another's
 * validator, whether it checks the server id or the URL. And RFC 7523 jwt-bearer with an ID-JAG from
 * acme's IdP (a real JWKS on 127.0.0.1), as oauth4webapi's generic grant sends it.
 */

const CRM_URL = 'https://crm.example.test/mcp';
const insecure = { [oauth.allowInsecureRequests]: true } as const;

describe('oauth4webapi: discovery, client credentials, token exchange, RFC 9068 validation', () => {
  let h: Harness;
  let as: OAuth4WebApi.AuthorizationServer;
  const client: OAuth4WebApi.Client = { client_id: 'acme-agent' };
  let auth: OAuth4WebApi.ClientAuth;
  let idp: Idp;
  let closeIdps: () => Promise<void>;

  beforeAll(async () => {
    const port = await freePort();
    const idps = await startIdps(['acme']);
    idp = idps.idps.acme!;
    closeIdps = idps.close;
    h = await startHarness({
      port,
      overrides: (p) => {
        p.broker.issuer = `http://127.0.0.1:${port}`;
        p.servers['crm-mcp'].resource = CRM_URL;
        p.tenants.acme.idp = { issuer: idp.issuer, jwks_uri: idp.jwksUri, audience: 'bulkhead', id_jag: true };
      },
    });
    auth = oauth.ClientSecretPost(h.clientSecrets['acme-agent']!);
    const issuer = new URL(h.url);
    as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
  });
  afterAll(async () => {
    await h?.close();
    await closeIdps?.();
  });

  const validate = (token: string, audience: string) =>
    oauth.validateJwtAccessToken(as, new Request(CRM_URL, { headers: { authorization: `Bearer ${token}` } }), audience, { signingAlgorithms: ['EdDSA'], ...insecure });

  async function clientCredentials(fields: Record<string, string>): Promise<string> {
    const response = await oauth.clientCredentialsGrantRequest(as, client, auth, new URLSearchParams(fields), insecure);
    return (await oauth.processClientCredentialsResponse(as, client, response)).access_token;
  }

  it('discovers metadata every client accepts: authorization code + S256, the grants, metadata documents, RFC 9207', () => {
    expect(as).toMatchObject({
      issuer: h.url,
      authorization_endpoint: `${h.url}/authorize`,
      token_endpoint: `${h.url}/v1/token`,
      jwks_uri: `${h.url}/.well-known/jwks.json`,
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      grant_types_supported: expect.arrayContaining(['authorization_code', 'client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange']),
      token_endpoint_auth_methods_supported: expect.arrayContaining(['client_secret_basic', 'client_secret_post', 'none']),
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: true,
    });
  });

  it('issues, by client credentials with resource=<URL>, a token RFC 9068 validation accepts for the URL and the server id', async () => {
    const token = await clientCredentials({ resource: CRM_URL });
    const claims = await validate(token, CRM_URL);
    expect(claims).toMatchObject({ iss: h.url, sub: 'acme-agent', client_id: 'acme/acme-agent', aud: ['crm-mcp', CRM_URL], tid: 'acme' });
    await expect(validate(token, 'crm-mcp')).resolves.toMatchObject({ tid: 'acme' });
    // Bulkhead's own audience check (the server id) keeps working on the same token.
    expect((await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' } })).body.decision).toBe('allow');
    expect((await h.authorize('mail-mcp', { token, tool: 'send_email', arguments: {} })).body.reason).toBe('audience_mismatch');
  });

  it('keeps aud the server id alone when the client named the server by id', async () => {
    const token = await clientCredentials({ audience: 'crm-mcp' });
    expect(await validate(token, 'crm-mcp')).toMatchObject({ aud: 'crm-mcp', client_id: 'acme/acme-agent' });
    await expect(validate(token, CRM_URL)).rejects.toThrow(/aud/);
  });

  it('refuses another server\'s token in a validator for this one, by id and by URL', async () => {
    const mail = await clientCredentials({ audience: 'mail-mcp' });
    await expect(validate(mail, 'crm-mcp')).rejects.toThrow(/aud/);
    await expect(validate(mail, CRM_URL)).rejects.toThrow(/aud/);
  });

  it('exchanges (refreshes) a token with the same client; the new one keeps client_id, audience and session', async () => {
    const first = await clientCredentials({ resource: CRM_URL });
    const response = await oauth.genericTokenEndpointRequest(
      as,
      client,
      auth,
      'urn:ietf:params:oauth:grant-type:token-exchange',
      new URLSearchParams({ subject_token: first, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: CRM_URL }),
      insecure,
    );
    if (response.status !== 200) throw new Error(await response.clone().text());
    const exchanged = await oauth.processGenericTokenEndpointResponse(as, client, response);
    const before = await validate(first, CRM_URL);
    const after = await validate(exchanged.access_token, CRM_URL);
    expect(after).toMatchObject({ client_id: before.client_id, sid: before.sid, aud: ['crm-mcp', CRM_URL] });
    expect(after.jti).not.toBe(before.jti);
    // A refresh keeps aud exactly, whichever way this request names the same server.
    const byId = await oauth.genericTokenEndpointRequest(as, client, auth, 'urn:ietf:params:oauth:grant-type:token-exchange', new URLSearchParams({ subject_token: first, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: 'crm-mcp' }), insecure);
    expect(await validate((await oauth.processGenericTokenEndpointResponse(as, client, byId)).access_token, CRM_URL)).toMatchObject({ aud: ['crm-mcp', CRM_URL] });
  });

  it('grants jwt-bearer with an ID-JAG for the client it names; the token validates as RFC 9068 for that client', async () => {
    const now = Math.floor(Date.now() / 1000);
    const assertion = await idp.sign({ aud: h.url, sub: 'alice@acme.example', client_id: 'acme-agent', jti: 'oauth4webapi-1', resource: CRM_URL, scope: 'query_crm' }, now, { typ: 'oauth-id-jag+jwt' });
    const send = () => oauth.genericTokenEndpointRequest(as, client, auth, 'urn:ietf:params:oauth:grant-type:jwt-bearer', new URLSearchParams({ assertion }), insecure);
    const answer = await oauth.processGenericTokenEndpointResponse(as, client, await send());
    expect(await validate(answer.access_token, CRM_URL)).toMatchObject({ sub: 'alice@acme.example', client_id: 'acme-agent', tid: 'acme', aud: ['crm-mcp', CRM_URL], scope: 'query_crm' });
    // Once: the replay is an OAuth error the client library reports as such.
    await expect(send().then((response) => oauth.processGenericTokenEndpointResponse(as, client, response))).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  /** A resource server's introspection client: its server key as the bearer credential. */
  function introspect(token: string, server = 'crm-mcp') {
    const asServer: OAuth4WebApi.ClientAuth = (_as, _client, _body, headers) => headers.set('authorization', `Bearer ${h.serverKeys[server]!}`);
    return oauth.introspectionRequest(as, { client_id: server }, asServer, token, insecure).then((response) => oauth.processIntrospectionResponse(as, { client_id: server }, response));
  }

  it('introspects (RFC 7662) for the token\'s own server only, and reports a revoked token inactive at once', async () => {
    const token = await clientCredentials({ resource: CRM_URL });
    expect(await introspect(token)).toMatchObject({ active: true, client_id: 'acme/acme-agent', sub: 'acme-agent', aud: ['crm-mcp', CRM_URL], tid: 'acme', scope: 'query_crm export_report send_email' });
    expect(await introspect(token, 'mail-mcp')).toEqual({ active: false });
    expect(await introspect('not-a-token')).toEqual({ active: false });
    const anonymous = await fetch(as.introspection_endpoint!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
    expect([anonymous.status, ((await anonymous.json()) as { error: string }).error]).toEqual([401, 'invalid_client']);

    const claims = await validate(token, CRM_URL);
    expect((await h.post('/v1/revoke', { session: claims.sid }, h.operatorToken)).status).toBe(200);
    expect(await introspect(token)).toEqual({ active: false });
  });

  it('revokes (RFC 7009) a token for the client it was issued to, never for another client', async () => {
    const token = await clientCredentials({ audience: 'crm-mcp' });
    const reader: OAuth4WebApi.Client = { client_id: 'acme-reader' };
    const refused = await oauth.revocationRequest(as, reader, oauth.ClientSecretPost(h.clientSecrets['acme-reader']!), token, insecure);
    expect([refused.status, ((await refused.json()) as { error: string }).error]).toEqual([400, 'unauthorized_client']);
    expect(await introspect(token)).toMatchObject({ active: true });
    const wrongSecret = await oauth.revocationRequest(as, client, oauth.ClientSecretPost('wrong'), token, insecure);
    expect(wrongSecret.status).toBe(401);
    expect(await introspect(token)).toMatchObject({ active: true });

    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, token, insecure));
    expect(await introspect(token)).toEqual({ active: false });
    expect((await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' } })).body.reason).toBe('token_revoked');
    // An invalid token is no error (RFC 7009 §2.2).
    expect((await oauth.revocationRequest(as, client, auth, 'not-a-token', insecure)).status).toBe(200);
  });
});
