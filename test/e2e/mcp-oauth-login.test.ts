import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auth, Client, StreamableHTTPClientTransport, type OAuthClientProvider, type OAuthDiscoveryState } from '@modelcontextprotocol/client';
import { decodeJwt } from 'jose';
import { startHarness, type Harness } from '../support/broker-harness';
import { freePort } from '../support/free-port';
import { findLeaks } from '../support/leak-scan';
import { REVISION } from '../support/mcp-client-v2';
import { startTestIdp, type TestIdp } from '../support/oidc-idp';
import { ScriptedBrowser, type Page } from '../support/scripted-browser';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { challengeOf } from '../../src/oauth/pkce';
import { createMemoryCrmStore, demoDataset, type MemoryCrmStore } from '../../examples/crm-mcp/crm-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';

/**
 * A person of tenant acme connects a standard MCP client to the Bulkhead-protected CRM: the MCP SDK's
 * own `auth()` follows the CRM's RFC 9728 metadata to the broker, the broker's RFC 8414 metadata to
 * /authorize, and a scripted browser logs in at acme's own IdP (a real oidc-provider in its own
 * process). The client then lists acme's tools over MCP 2026-07-28; the same for globex gets
 * globex's. Then the ways to cheat the flow: code and state replay, a PKCE mismatch, foreign redirect
 * URIs, the other tenant's IdP answering, a login finished in another browser.
 */

const REDIRECT = 'http://127.0.0.1:47619/callback';
const isRedirect = (location: string) => location.startsWith(REDIRECT);

/** An OAuthClientProvider as a desktop MCP client implements one: memory only, a registered client id. */
class DesktopClient implements OAuthClientProvider {
  authorizationUrl?: URL;
  saved?: { access_token: string; token_type: string };
  verifier = '';
  private discovery?: OAuthDiscoveryState;
  constructor(private readonly clientId = 'desktop-agent') {}
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return { client_name: 'Desktop agent', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], token_endpoint_auth_method: 'none' };
  }
  state() {
    return randomBytes(16).toString('base64url');
  }
  clientInformation() {
    return { client_id: this.clientId };
  }
  tokens() {
    return this.saved as never;
  }
  saveTokens(tokens: { access_token: string; token_type: string }) {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
  saveDiscoveryState(state: OAuthDiscoveryState) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
}

describe('authorization code + PKCE federated to the tenant IdP, driven by the MCP SDK client', () => {
  let h: Harness;
  let crm: CrmServer;
  let store: MemoryCrmStore;
  let secretsDir: string;
  const idps: Record<string, TestIdp> = {};
  const open: Client[] = [];
  /** Every IdP client secret, authorization code and access token of the run: none may reach a log or a file. */
  const planted: Array<{ label: string; value: string }> = [];

  beforeAll(async () => {
    const [brokerPort, crmPort] = [await freePort(), await freePort()];
    const brokerUrl = `http://127.0.0.1:${brokerPort}`;
    const callback = `${brokerUrl}/authorize/callback`;
    secretsDir = await mkdtemp(join(tmpdir(), 'bulkhead-idp-secrets-'));
    const login: Record<string, unknown> = {};
    for (const [tenant, user] of [['acme', 'alice@acme.example'], ['globex', 'bob@globex.example']] as const) {
      const secret = randomBytes(24).toString('base64url');
      planted.push({ label: `${tenant} IdP client secret`, value: secret });
      await writeFile(join(secretsDir, tenant), secret + '\n', { mode: 0o600 });
      const idp = await startTestIdp({ name: `${tenant} SSO`, users: [user], client: { client_id: 'bulkhead', client_secret: secret, redirect_uris: [callback] } });
      idps[tenant] = idp;
      login[tenant] = {
        issuer: idp.issuer,
        jwks_uri: idp.jwks_uri,
        audience: 'bulkhead',
        login: { client_id: 'bulkhead', client_secret_file: join(secretsDir, tenant), authorization_endpoint: idp.authorization_endpoint, token_endpoint: idp.token_endpoint, domains: [`${tenant}.example`] },
      };
    }
    h = await startHarness({
      port: brokerPort,
      overrides: (p) => {
        p.broker.issuer = brokerUrl;
        // The metadata documents below are served from 127.0.0.1 over http (tests and development only).
        p.broker.authorization = { client_metadata: { allow_http_loopback: true } };
        p.servers['crm-mcp'].resource = `http://127.0.0.1:${crmPort}/mcp`;
        p.tenants.acme.idp = login.acme;
        p.tenants.globex.idp = { ...(login.globex as object), scope: ['query_crm'] };
        p.clients = {
          'desktop-agent': { redirect_uris: ['http://127.0.0.1/callback'], name: 'Desktop agent' },
          'acme-portal': { redirect_uris: ['http://127.0.0.1/callback'], tenant: 'acme' },
        };
      },
    });
    store = createMemoryCrmStore(['acme', 'globex', 'initech'].map((t) => demoDataset(t, [h.upstream[t]!])));
    crm = await startCrmServer({ entry: 'v2', brokerUrl, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, store, port: crmPort, logger: { info: () => undefined, warn: () => undefined } });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close().catch(() => undefined)));
    await crm?.close();
    await h?.close();
    await Promise.all(Object.values(idps).map((idp) => idp.close()));
    await rm(secretsDir, { recursive: true, force: true });
  });

  /** The MCP client's first auth() leg and the browser up to the organisation page. */
  async function startLogin(provider: DesktopClient, browser = new ScriptedBrowser()): Promise<{ browser: ScriptedBrowser; page: Page }> {
    expect(await auth(provider, { serverUrl: crm.url })).toBe('REDIRECT');
    const page = await browser.navigate(provider.authorizationUrl!.href, { stopAt: isRedirect });
    if (!('html' in page)) throw new Error(`expected the organisation page, got a redirect to ${page.stoppedAt}`);
    return { browser, page };
  }

  /** Organisation typed, user signed in at that IdP; returns where the browser was sent back to the client. */
  async function signIn(browser: ScriptedBrowser, organisationPage: Page, organisation: string, user: string): Promise<URL> {
    const idpPage = await browser.submit(organisationPage, { organization: organisation }, { stopAt: isRedirect });
    if (!('html' in idpPage)) throw new Error(`expected the IdP login form, got ${idpPage.stoppedAt}`);
    const back = await browser.submit(idpPage, { login: user }, { stopAt: isRedirect });
    if (!('stoppedAt' in back)) throw new Error(`expected a redirect back to the client, got ${back.status}: ${back.html.slice(0, 300)}`);
    const url = new URL(back.stoppedAt);
    planted.push({ label: 'authorization code', value: url.searchParams.get('code')! });
    return url;
  }

  async function connect(provider: DesktopClient): Promise<Client> {
    const client = new Client({ name: 'desktop-agent', version: '1.0.0' }, { versionNegotiation: { mode: { pin: REVISION } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(crm.url), { authProvider: provider }));
    open.push(client);
    return client;
  }

  const tokenRequest = (fields: Record<string, string>) => fetch(`${h.url}/v1/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields) });

  it('logs a person of acme in at acme\'s IdP; the SDK client lists acme\'s tools and reads acme\'s rows', async () => {
    const provider = new DesktopClient();
    const { browser, page } = await startLogin(provider);
    expect(page.html).toContain('Sign in with your organisation');
    const back = await signIn(browser, page, 'alice@acme.example', 'alice@acme.example');
    expect(back.searchParams.get('state')).toBe(provider.authorizationUrl!.searchParams.get('state'));
    expect(back.searchParams.get('iss')).toBe(h.url);
    expect(await auth(provider, { serverUrl: crm.url, authorizationCode: back.searchParams.get('code')!, iss: back.searchParams.get('iss')! })).toBe('AUTHORIZED');

    planted.push({ label: 'access token', value: provider.saved!.access_token });
    const claims = decodeJwt(provider.saved!.access_token);
    expect(claims).toMatchObject({ iss: h.url, tid: 'acme', sub: 'alice@acme.example', client_id: 'desktop-agent', aud: ['crm-mcp', crm.url] });
    const client = await connect(provider);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['export_report', 'query_crm', 'send_email']);
    const rows = (await client.callTool({ name: 'query_crm', arguments: { path: 'acme/contacts' } })) as { content: Array<{ text: string }>; isError?: boolean };
    expect(rows.isError).toBeFalsy();
    expect(rows.content[0]!.text).toContain('acme');
    const foreign = (await client.callTool({ name: 'query_crm', arguments: { path: 'globex/contacts' } })) as { content: Array<{ text: string }>; isError?: boolean };
    expect(foreign.isError).toBe(true);
    expect(foreign.content[0]!.text).toContain('resource_out_of_scope');
  });

  it('logs a person of globex in at globex\'s IdP and lists only globex\'s tools', async () => {
    const provider = new DesktopClient();
    const { browser, page } = await startLogin(provider);
    const back = await signIn(browser, page, 'globex', 'bob@globex.example');
    expect(await auth(provider, { serverUrl: crm.url, authorizationCode: back.searchParams.get('code')!, iss: back.searchParams.get('iss')! })).toBe('AUTHORIZED');
    expect(decodeJwt(provider.saved!.access_token)).toMatchObject({ tid: 'globex', sub: 'bob@globex.example' });
    const client = await connect(provider);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['query_crm']);
  });

  it('refuses a second redemption of a code, and a second use of the IdP\'s answer (state)', async () => {
    const provider = new DesktopClient();
    const { browser, page } = await startLogin(provider);
    const back = await signIn(browser, page, 'acme', 'alice@acme.example');
    const code = back.searchParams.get('code')!;
    const redeem = { grant_type: 'authorization_code', code, client_id: 'desktop-agent', redirect_uri: REDIRECT, code_verifier: provider.verifier, resource: crm.url };
    expect((await tokenRequest(redeem)).status).toBe(200);
    const replay = await tokenRequest(redeem);
    expect([replay.status, ((await replay.json()) as { error: string }).error]).toEqual([400, 'invalid_grant']);

    // The IdP's redirect to the broker's callback, replayed in the same browser (cookie and all).
    const callback = browser.hops.find((hop) => hop.url.startsWith(`${h.url}/authorize/callback`))!;
    const again = await browser.navigate(callback.url, { stopAt: isRedirect });
    expect('html' in again && again.status).toBe(400);
    expect('html' in again && again.html).toContain('already used');
  });

  it('refuses a PKCE verifier that does not match, and the code is spent by the attempt', async () => {
    const provider = new DesktopClient();
    const { browser, page } = await startLogin(provider);
    const back = await signIn(browser, page, 'acme', 'alice@acme.example');
    const base = { grant_type: 'authorization_code', code: back.searchParams.get('code')!, client_id: 'desktop-agent', redirect_uri: REDIRECT };
    const wrong = await tokenRequest({ ...base, code_verifier: randomBytes(32).toString('base64url') });
    expect([wrong.status, ((await wrong.json()) as { error_description: string }).error_description]).toEqual([400, 'code_verifier does not match the code_challenge (PKCE)']);
    const right = await tokenRequest({ ...base, code_verifier: provider.verifier });
    expect([right.status, ((await right.json()) as { error: string }).error]).toEqual([400, 'invalid_grant']);
  });

  it('refuses S256-less PKCE, and a code redeemed with another redirect URI or by another client', async () => {
    const provider = new DesktopClient();
    expect(await auth(provider, { serverUrl: crm.url })).toBe('REDIRECT');
    for (const [name, value] of [['code_challenge_method', 'plain'], ['code_challenge_method', ''], ['code_challenge', 'short']] as const) {
      const url = new URL(provider.authorizationUrl!);
      url.searchParams.set(name, value);
      const answer = await fetch(url, { redirect: 'manual' });
      const location = new URL(answer.headers.get('location')!);
      expect([answer.status, location.origin + location.pathname, location.searchParams.get('error'), location.searchParams.get('iss')]).toEqual([303, REDIRECT, 'invalid_request', h.url]);
    }
    const noChallenge = new URL(provider.authorizationUrl!);
    noChallenge.searchParams.delete('code_challenge');
    expect(new URL((await fetch(noChallenge, { redirect: 'manual' })).headers.get('location')!).searchParams.get('error')).toBe('invalid_request');

    for (const swap of [{ redirect_uri: 'http://127.0.0.1:47619/other' }, { client_id: 'acme-portal' }]) {
      const login = new DesktopClient();
      const { browser, page } = await startLogin(login);
      const back = await signIn(browser, page, 'acme', 'alice@acme.example');
      const answer = await tokenRequest({ grant_type: 'authorization_code', code: back.searchParams.get('code')!, client_id: 'desktop-agent', redirect_uri: REDIRECT, code_verifier: login.verifier, ...swap });
      expect([answer.status, ((await answer.json()) as { error: string }).error]).toEqual([400, 'invalid_grant']);
    }
  });

  it('never redirects to a redirect URI the client did not register: a page, no Location', async () => {
    const provider = new DesktopClient();
    expect(await auth(provider, { serverUrl: crm.url })).toBe('REDIRECT');
    const foreign = [
      'https://evil.example/callback',
      'http://127.0.0.1/callback/../evil',
      'http://127.0.0.1:47619/callbackx',
      'http://127.0.0.1:47619/callback?next=https://evil.example',
      'http://127.0.0.1:47619/callback#frag',
      'http://localhost:47619/callback',
      'http://127.0.0.1.evil.example/callback',
      'https://127.0.0.1:47619/callback',
      'HTTP://127.0.0.1:47619/callback',
    ];
    for (const uri of foreign) {
      const url = new URL(provider.authorizationUrl!);
      url.searchParams.set('redirect_uri', uri);
      const answer = await fetch(url, { redirect: 'manual' });
      expect([uri, answer.status, answer.headers.get('location')]).toEqual([uri, 400, null]);
      expect(await answer.text()).toContain('redirect_uri is not registered');
    }
    const unknownClient = new URL(provider.authorizationUrl!);
    unknownClient.searchParams.set('client_id', 'no-such-client');
    const answer = await fetch(unknownClient, { redirect: 'manual' });
    expect([answer.status, answer.headers.get('location')]).toEqual([400, null]);
  });

  /**
   * Two logins in one browser: one for acme (stopped at acme's IdP), one for globex carried through
   * globex's IdP up to its answer to the broker's callback. Returns that answer and acme's state: what
   * an attacker holding a globex account has to splice.
   */
  async function globexAnswerAndAcmeState(browser: ScriptedBrowser): Promise<{ answer: URL; acmeState: string }> {
    const { page: acmePage } = await startLogin(new DesktopClient(), browser);
    expect('html' in (await browser.submit(acmePage, { organization: 'acme' }, { stopAt: isRedirect }))).toBe(true);
    const acmeState = new URL(browser.hops.find((hop) => hop.location?.startsWith(idps.acme!.authorization_endpoint))!.location!).searchParams.get('state')!;
    const { page: globexPage } = await startLogin(new DesktopClient(), browser);
    const globexIdpPage = await browser.submit(globexPage, { organization: 'globex' }, { stopAt: isRedirect });
    const idpAnswer = await browser.submit(globexIdpPage as Page, { login: 'bob@globex.example' }, { stopAt: (l) => l.startsWith(`${h.url}/authorize/callback`) });
    return { answer: new URL((idpAnswer as { stoppedAt: string }).stoppedAt), acmeState };
  }

  it('refuses the other tenant\'s IdP answering an acme login: its issuer', async () => {
    const browser = new ScriptedBrowser();
    const { answer, acmeState } = await globexAnswerAndAcmeState(browser);
    expect(answer.searchParams.get('iss')).toBe(idps.globex!.issuer);
    answer.searchParams.set('state', acmeState);
    const refused = await browser.navigate(answer.href, { stopAt: isRedirect });
    const location = new URL((refused as { stoppedAt: string }).stoppedAt);
    expect([location.searchParams.get('error'), location.searchParams.get('error_description'), location.searchParams.get('code')]).toEqual(['access_denied', 'the identity provider response came from another issuer', null]);
  });

  it('refuses a globex code delivered without its issuer to an acme login (acme\'s IdP does not know it)', async () => {
    const browser = new ScriptedBrowser();
    const { answer, acmeState } = await globexAnswerAndAcmeState(browser);
    answer.searchParams.set('state', acmeState);
    answer.searchParams.delete('iss');
    const refused = await browser.navigate(answer.href, { stopAt: isRedirect });
    const location = new URL((refused as { stoppedAt: string }).stoppedAt);
    expect([location.searchParams.get('error'), location.searchParams.get('code')]).toEqual(['access_denied', null]);
  });

  it('refuses to finish a login in another browser than the one that started it, and the state is spent', async () => {
    const provider = new DesktopClient();
    const { browser, page } = await startLogin(provider);
    const idpPage = await browser.submit(page, { organization: 'acme' }, { stopAt: isRedirect });
    const idpAnswer = await browser.submit(idpPage as Page, { login: 'alice@acme.example' }, { stopAt: (l) => l.startsWith(`${h.url}/authorize/callback`) });
    const callback = (idpAnswer as { stoppedAt: string }).stoppedAt;
    const elsewhere = await new ScriptedBrowser().navigate(callback, { stopAt: isRedirect });
    expect('html' in elsewhere && [elsewhere.status, elsewhere.html.includes('another browser')]).toEqual([400, true]);
    const original = await browser.navigate(callback, { stopAt: isRedirect });
    expect('html' in original && original.status).toBe(400);
  });

  it('asks for the organisation without listing tenants, and answers unknown and login-less tenants alike', async () => {
    const provider = new DesktopClient();
    const { browser, page } = await startLogin(provider);
    expect(page.html).not.toMatch(/acme|globex|initech/);
    const unknown = (await browser.submit(page, { organization: 'umbrella' })) as Page;
    const loginLess = (await browser.submit(page, { organization: 'initech' })) as Page;
    expect(unknown.html).toContain('No organisation by that name signs in here.');
    expect(loginLess.html.replace(/value="[^"]*"/g, '')).toBe(unknown.html.replace(/value="[^"]*"/g, '').replace('umbrella', 'initech'));
  });

  it('keeps a client bound to acme at acme: a globex login hint is refused, not followed', async () => {
    const provider = new DesktopClient('acme-portal');
    expect(await auth(provider, { serverUrl: crm.url })).toBe('REDIRECT');
    const url = new URL(provider.authorizationUrl!);
    const straight = await fetch(url, { redirect: 'manual' });
    expect(straight.headers.get('location')!.startsWith(idps.acme!.authorization_endpoint)).toBe(true);
    url.searchParams.set('login_hint', 'bob@globex.example');
    const hinted = new URL((await fetch(url, { redirect: 'manual' })).headers.get('location')!);
    expect([hinted.origin + hinted.pathname, hinted.searchParams.get('error')]).toEqual([REDIRECT, 'access_denied']);
  });

  it('refuses a resource that names no server, before any login', async () => {
    const provider = new DesktopClient();
    expect(await auth(provider, { serverUrl: crm.url })).toBe('REDIRECT');
    const url = new URL(provider.authorizationUrl!);
    url.searchParams.set('resource', 'https://unknown.example/mcp');
    const location = new URL((await fetch(url, { redirect: 'manual' })).headers.get('location')!);
    expect([location.searchParams.get('error'), location.searchParams.get('state'), location.searchParams.get('iss')]).toEqual(['invalid_target', url.searchParams.get('state'), h.url]);
  });

  describe('a client registered by its Client ID Metadata Document', () => {
    let documents: Server;
    let clientId: string;
    beforeAll(async () => {
      documents = createServer((req, res) => {
        const url = `http://127.0.0.1:${(documents.address() as AddressInfo).port}${req.url}`;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ client_id: url, client_name: 'Metadata agent', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }));
      });
      await new Promise<void>((resolve) => documents.listen(0, '127.0.0.1', resolve));
      clientId = `http://127.0.0.1:${(documents.address() as AddressInfo).port}/agent.json`;
    });
    afterAll(() => new Promise<void>((resolve) => documents.close(() => resolve())));

    function authorizeUrl(verifier: string, extra: Record<string, string> = {}): string {
      const url = new URL(`${h.url}/authorize`);
      for (const [k, v] of Object.entries({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challengeOf(verifier), code_challenge_method: 'S256', resource: crm.url, state: 'st-1', login_hint: 'alice@acme.example', ...extra })) url.searchParams.set(k, v);
      return url.href;
    }

    it('logs in with the document URL as client_id; the token names it as client_id', async () => {
      const verifier = randomBytes(32).toString('base64url');
      const browser = new ScriptedBrowser();
      // The email login hint picks acme at once: no organisation page.
      const idpPage = await browser.navigate(authorizeUrl(verifier), { stopAt: isRedirect });
      const back = await browser.submit(idpPage as Page, { login: 'alice@acme.example' }, { stopAt: isRedirect });
      const code = new URL((back as { stoppedAt: string }).stoppedAt).searchParams.get('code')!;
      const answer = await tokenRequest({ grant_type: 'authorization_code', code, client_id: clientId, redirect_uri: REDIRECT, code_verifier: verifier, resource: crm.url });
      expect(answer.status).toBe(200);
      expect(decodeJwt(((await answer.json()) as { access_token: string }).access_token)).toMatchObject({ client_id: clientId, tid: 'acme', sub: 'alice@acme.example' });
    });

    it('refuses a redirect URI its document does not list, and a secret at the token endpoint', async () => {
      const verifier = randomBytes(32).toString('base64url');
      const foreign = await fetch(authorizeUrl(verifier, { redirect_uri: 'http://127.0.0.1:47619/elsewhere' }), { redirect: 'manual' });
      expect([foreign.status, foreign.headers.get('location')]).toEqual([400, null]);
      const browser = new ScriptedBrowser();
      const idpPage = await browser.navigate(authorizeUrl(verifier), { stopAt: isRedirect });
      const back = await browser.submit(idpPage as Page, { login: 'alice@acme.example' }, { stopAt: isRedirect });
      const code = new URL((back as { stoppedAt: string }).stoppedAt).searchParams.get('code')!;
      const withSecret = await tokenRequest({ grant_type: 'authorization_code', code, client_id: clientId, client_secret: 'x', redirect_uri: REDIRECT, code_verifier: verifier });
      expect([withSecret.status, ((await withSecret.json()) as { error: string }).error]).toEqual([401, 'invalid_client']);
    });
  });

  it('leaks no IdP client secret, authorization code or access token into a log line or a data file', async () => {
    expect(planted.length).toBeGreaterThan(5);
    expect(await findLeaks(h, planted)).toEqual([]);
  });
});
