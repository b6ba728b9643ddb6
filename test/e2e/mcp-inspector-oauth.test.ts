import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryCrmStore, demoDataset, type MemoryCrmStore } from '../../examples/crm-mcp/crm-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';
import { startHarness, type Harness } from '../support/broker-harness';
import { freePort } from '../support/free-port';
import { startTestIdp, type TestIdp } from '../support/oidc-idp';
import { ScriptedBrowser } from '../support/scripted-browser';

/**
 * The MCP Inspector's own OAuth (`@modelcontextprotocol/inspector --cli` with `--client-id`): it meets
 * the CRM's 401, follows RFC 9728 to the broker, starts authorization code + PKCE with its loopback
 * callback listener and prints "Please navigate to: URL" (no browser opens: BROWSER is a no-op). A
 * scripted browser takes that URL through the broker's organisation page and a real oidc-provider login
 * at acme's IdP; the redirect lands on the Inspector's listener, which redeems the code itself and lists
 * the tools. Nothing here hands the Inspector a token.
 */

const CLI = require.resolve('@modelcontextprotocol/inspector/clients/launcher/build/index.js');
const SLOW = 180_000;

describe('the MCP Inspector CLI logs a person in with its own OAuth and lists their tools', () => {
  let h: Harness;
  let crm: CrmServer;
  let store: MemoryCrmStore;
  let idp: TestIdp;
  let home: string;
  let secretsDir: string;

  beforeAll(async () => {
    const [brokerPort, crmPort] = [await freePort(), await freePort()];
    const brokerUrl = `http://127.0.0.1:${brokerPort}`;
    secretsDir = await mkdtemp(join(tmpdir(), 'bulkhead-inspector-idp-'));
    const secret = randomBytes(24).toString('base64url');
    await writeFile(join(secretsDir, 'acme'), secret + '\n', { mode: 0o600 });
    idp = await startTestIdp({ name: 'acme SSO', users: ['alice@acme.example'], client: { client_id: 'bulkhead', client_secret: secret, redirect_uris: [`${brokerUrl}/authorize/callback`] } });
    h = await startHarness({
      port: brokerPort,
      overrides: (p) => {
        p.broker.issuer = brokerUrl;
        p.servers['crm-mcp'].resource = `http://127.0.0.1:${crmPort}/mcp`;
        p.tenants.acme.idp = {
          issuer: idp.issuer,
          jwks_uri: idp.jwks_uri,
          audience: 'bulkhead',
          login: { client_id: 'bulkhead', client_secret_file: join(secretsDir, 'acme'), authorization_endpoint: idp.authorization_endpoint, token_endpoint: idp.token_endpoint, domains: ['acme.example'] },
        };
        // The Inspector as a static public client: its loopback callback (any port, RFC 8252).
        p.clients = { 'mcp-inspector': { redirect_uris: ['http://127.0.0.1/oauth/callback'], name: 'MCP Inspector' } };
      },
    });
    store = createMemoryCrmStore(['acme', 'globex', 'initech'].map((t) => demoDataset(t, [h.upstream[t]!])));
    crm = await startCrmServer({ entry: 'v2', brokerUrl, serverId: 'crm-mcp', serverKey: h.serverKeys['crm-mcp']!, store, port: crmPort, logger: { info: () => undefined, warn: () => undefined } });
    home = await mkdtemp(join(tmpdir(), 'bulkhead-inspector-'));
  });

  afterAll(async () => {
    await crm?.close();
    await h?.close();
    await idp?.close();
    for (const dir of [home, secretsDir]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("takes the Inspector through the broker and acme's IdP; it redeems the code and lists acme's tools", async () => {
    const callbackPort = await freePort();
    const callback = `http://127.0.0.1:${callbackPort}/oauth/callback`;
    const child: ChildProcess = spawn(
      process.execPath,
      [CLI, '--cli', crm.url, '--transport', 'http', '--protocol-era', 'modern', '--method', 'tools/list', '--client-id', 'mcp-inspector', '--callback-url', callback],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        // Interactive OAuth without a TTY: MCP_AUTO_OPEN_ENABLED lets it start, and BROWSER=true makes
        // "opening a browser" a no-op, so the printed URL is the only way in (ours). Secrets in memory.
        env: { ...process.env, HOME: home, MCP_CATALOG_PATH: join(home, 'mcp.json'), NO_COLOR: '1', MCP_AUTO_OPEN_ENABLED: 'true', BROWSER: 'true', MCP_INSPECTOR_SECRET_STORE: 'memory' },
      },
    );
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk) => (out += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const authorizationUrl = await new Promise<string>((resolve, reject) => {
        child.stderr!.on('data', (chunk) => {
          err += chunk;
          const match = /Please navigate to: (\S+)/.exec(err);
          if (match) resolve(match[1]!);
        });
        void exited.then((code) => reject(new Error(`the Inspector exited (${code}) before asking for a login: ${out}${err}`)));
      });
      expect(authorizationUrl.startsWith(`${h.url}/authorize?`)).toBe(true);
      expect(new URL(authorizationUrl).searchParams.get('code_challenge_method')).toBe('S256');

      const browser = new ScriptedBrowser();
      const toInspector = (location: string) => location.startsWith(callback);
      const organisation = await browser.navigate(authorizationUrl, { stopAt: toInspector });
      if (!('html' in organisation)) throw new Error(`expected the organisation page, got a redirect to ${organisation.stoppedAt}`);
      const login = await browser.submit(organisation, { organization: 'alice@acme.example' }, { stopAt: toInspector });
      if (!('html' in login)) throw new Error(`expected acme's login form, got a redirect to ${login.stoppedAt}`);
      const back = await browser.submit(login, { login: 'alice@acme.example' }, { stopAt: toInspector });
      if (!('stoppedAt' in back)) throw new Error(`expected the redirect to the Inspector, got ${back.status}`);
      expect(new URL(back.stoppedAt).searchParams.get('iss')).toBe(h.url);
      // The browser arrives at the Inspector's listener; from here the Inspector works alone.
      await (await fetch(back.stoppedAt)).arrayBuffer();

      expect(await exited).toBe(0);
      const listed = JSON.parse(out) as { tools: Array<{ name: string }> };
      expect(listed.tools.map((t) => t.name).sort()).toEqual(['export_report', 'query_crm', 'send_email']);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, SLOW);
});
