import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { z } from 'zod';
import { callContextVerifier, canonicalJson } from '../../examples/downstream/verify-call-context';
import { canonicalJson as brokersCanonicalJson } from '../../src/crypto/hash';
import { bulkheadCall } from '../../src/mcp';
import { startHarness, type Harness } from '../support/broker-harness';
import { connectMcp, textOf } from '../support/mcp-client';
import { connectMcpV2 } from '../support/mcp-client-v2';
import { startToolServer, type ToolServer } from '../support/tool-server';

/**
 * The signed call context: an allow for a tool whose policy names a downstream service carries a
 * `bulkhead-call+jwt` for that service, which the wrapper hands the handler next to the credential.
 * A downstream service here checks it with jose alone (examples/downstream/verify-call-context.ts, the
 * code docs/mcp.md shows), over real HTTP, against the broker's published JWKS.
 */

const CRM_API = 'https://crm-api.internal';
type Result = { content: Array<{ type: string; text?: string }>; isError?: boolean };

describe('signed call context for downstream services', () => {
  let h: Harness;
  let downstream: Server;
  let downstreamUrl: string;
  let verify: ReturnType<typeof callContextVerifier>;
  const servers: ToolServer[] = [];
  const closers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    h = await startHarness({
      overrides: (p) => {
        for (const t of Object.keys(p.tenants)) p.tenants[t].tools.query_crm.downstream = { audience: CRM_API };
      },
    });
    verify = callContextVerifier({ brokerUrl: h.url, issuer: 'http://bulkhead.test', audience: CRM_API });
    // The downstream API: serves a request only with a call context that verifies for exactly its arguments.
    downstream = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', async () => {
        try {
          const call = await verify(req.headers['bulkhead-call-context'], JSON.parse(body) as Record<string, unknown>);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ served: call.tid, principal: call.sub, call_id: call.call_id }));
        } catch (err) {
          res.writeHead(401).end(JSON.stringify({ refused: (err as Error).message }));
        }
      });
    });
    await new Promise<void>((resolve) => downstream.listen(0, '127.0.0.1', () => resolve()));
    downstreamUrl = `http://127.0.0.1:${(downstream.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    await Promise.all(closers.map((c) => c()));
    await Promise.all(servers.map((s) => s.close()));
    await new Promise<void>((resolve) => downstream?.close(() => resolve()));
    await h?.close();
  });

  async function allow(principal: string, args: Record<string, unknown>, tool = 'query_crm') {
    const res = await h.authorize('crm-mcp', { token: await h.token(principal, 'crm-mcp'), tool, arguments: args });
    expect(res.status).toBe(200);
    return res.body as { call_id: string; arguments: Record<string, unknown>; call_context?: string; expires_at: string };
  }

  it('adds to an allow a bulkhead-call+jwt for the policy\'s downstream, verifiable from the JWKS with jose', async () => {
    const allowed = await allow('acme-agent', { path: 'acme/contacts' });
    const assertion = allowed.call_context!;
    expect(decodeProtectedHeader(assertion)).toMatchObject({ alg: 'EdDSA', typ: 'bulkhead-call+jwt' });
    const { payload } = await jwtVerify(assertion, createRemoteJWKSet(new URL('/.well-known/jwks.json', h.url)), { typ: 'bulkhead-call+jwt', issuer: 'http://bulkhead.test', audience: CRM_API });
    expect(payload).toMatchObject({ tid: 'acme', sub: 'acme-agent', azp: 'crm-mcp', tool: 'query_crm', call_id: allowed.call_id, jti: allowed.call_id });
    // The effective arguments (region injected by policy), hashed independently of the broker's code.
    expect(allowed.arguments).toEqual({ path: 'acme/contacts', region: 'eu-west-1' });
    expect(payload.args_s256).toBe(createHash('sha256').update('{"path":"acme/contacts","region":"eu-west-1"}').digest('base64url'));
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);
    expect(payload.exp! * 1000).toBeLessThanOrEqual(Date.parse(allowed.expires_at));
    await expect(verify(assertion, allowed.arguments)).resolves.toMatchObject({ tid: 'acme' });
  });

  it('adds none for a tool whose policy names no downstream service', async () => {
    const allowed = await allow('acme-agent', { table: 'contacts' }, 'export_report');
    expect(allowed.call_context).toBeUndefined();
  });

  it('is refused by the downstream for other arguments, another audience, or after its minute', async () => {
    const allowed = await allow('globex-agent', { path: 'globex/deals' });
    await expect(verify(allowed.call_context, { ...allowed.arguments, path: 'globex/deals/2' })).rejects.toThrow('arguments differ');
    await expect(verify(allowed.call_context, { path: 'globex/deals' })).rejects.toThrow('arguments differ');
    const other = callContextVerifier({ brokerUrl: h.url, issuer: 'http://bulkhead.test', audience: 'https://mail-api.internal' });
    await expect(other(allowed.call_context, allowed.arguments)).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
    const { payload } = await jwtVerify(allowed.call_context!, createRemoteJWKSet(new URL('/.well-known/jwks.json', h.url)));
    await expect(jwtVerify(allowed.call_context!, createRemoteJWKSet(new URL('/.well-known/jwks.json', h.url)), { currentDate: new Date((payload.exp! + 1) * 1000) })).rejects.toMatchObject({ code: 'ERR_JWT_EXPIRED' });
  });

  it('is never accepted as an access token: the broker refuses it on authorize, manifest and token exchange, the wrapper with 401', async () => {
    const { call_context: assertion } = await allow('acme-agent', { path: 'acme/contacts' });
    const authorize = await h.authorize('crm-mcp', { token: assertion, tool: 'query_crm', arguments: { path: 'acme/contacts' } });
    expect(authorize.status).toBe(403);
    expect(authorize.body).toMatchObject({ decision: 'deny', reason: 'token_invalid' });
    expect(authorize.body.credential).toBeUndefined();
    const manifest = await h.post('/v1/manifest', { token: assertion }, h.serverKeys['crm-mcp']);
    expect(manifest.body.reason).toBe('token_invalid');
    expect(manifest.body.tools).toBeUndefined();
    const exchange = await h.post('/v1/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: assertion, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] });
    expect(exchange.status).toBeGreaterThanOrEqual(400);
    expect(exchange.body.access_token).toBeUndefined();
    const server = await startToolServer({ entry: 'v2', brokerUrl: h.url, serverKey: h.serverKeys['crm-mcp']!, register: () => undefined });
    servers.push(server);
    const mcp = await fetch(server.url, { method: 'POST', headers: { authorization: `Bearer ${assertion}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' });
    expect(mcp.status).toBe(401);
  });

  it('and an access token is never accepted as a call context by a downstream that checks typ', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const asCrmMcp = callContextVerifier({ brokerUrl: h.url, issuer: 'http://bulkhead.test', audience: 'crm-mcp' });
    await expect(asCrmMcp(token, {})).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'typ' });
  });

  describe.each(['v2', 'v1'] as const)('handed to the handler on the %s entry', (entry) => {
    let server: ToolServer;
    const seen: Array<string | undefined> = [];

    beforeAll(async () => {
      server = await startToolServer({
        entry,
        brokerUrl: h.url,
        serverKey: h.serverKeys['crm-mcp']!,
        register(mcp) {
          mcp.registerTool('query_crm', { inputSchema: { path: z.string(), region: z.string().optional(), tamper: z.boolean().optional(), echo: z.boolean().optional() } }, async (_args: unknown, extra: object) => {
            const call = bulkheadCall(extra);
            seen.push(call.callContext);
            if (call.arguments.echo) return { content: [{ type: 'text', text: `context: ${call.callContext}` }] };
            const sent = call.arguments.tamper ? { ...call.arguments, path: 'globex/contacts' } : call.arguments;
            const response = await fetch(downstreamUrl, { method: 'POST', headers: { 'bulkhead-call-context': call.callContext ?? '' }, body: JSON.stringify(sent) });
            return { content: [{ type: 'text', text: `${response.status} ${await response.text()}` }] };
          });
          mcp.registerTool('export_report', { inputSchema: { table: z.string() } }, async (_args: unknown, extra: object) => {
            seen.push(bulkheadCall(extra).callContext);
            return { content: [{ type: 'text', text: 'ok' }] };
          });
        },
      });
      servers.push(server);
    });

    async function call(principal: string, name: string, args: Record<string, unknown>): Promise<string> {
      const token = await h.token(principal, 'crm-mcp');
      if (entry === 'v2') {
        const c = await connectMcpV2(server.url, token);
        closers.push(c.close);
        return textOf((await c.client.callTool({ name, arguments: args })) as never);
      }
      const c = await connectMcp(server.url, token);
      closers.push(c.close);
      return textOf((await c.call(name, args)) as Result as never);
    }

    it("lets the downstream serve each tenant's call as that tenant, checked by the downstream itself", async () => {
      expect(JSON.parse((await call('acme-agent', 'query_crm', { path: 'acme/contacts' })).slice(4))).toMatchObject({ served: 'acme', principal: 'acme-agent' });
      expect(JSON.parse((await call('globex-agent', 'query_crm', { path: 'globex/contacts' })).slice(4))).toMatchObject({ served: 'globex', principal: 'globex-agent' });
    });

    it('lets the downstream refuse a handler that changes the arguments after authorization', async () => {
      const answer = await call('acme-agent', 'query_crm', { path: 'acme/contacts', tamper: true });
      expect(answer.startsWith('401 ')).toBe(true);
      expect(answer).toContain('arguments differ');
    });

    it('keeps the call context from the client: a handler echoing it is redacted', async () => {
      const before = seen.length;
      const answer = await call('acme-agent', 'query_crm', { path: 'acme/contacts', echo: true });
      expect(seen[before]).toMatch(/^ey/);
      expect(answer).not.toContain(seen[before]!);
      expect(answer).toContain('[redacted by bulkhead]');
    });

    it('gives no call context for a tool without a downstream', async () => {
      const before = seen.length;
      expect(await call('acme-agent', 'export_report', { table: 'contacts' })).toBe('ok');
      expect(seen[before]).toBeUndefined();
    });
  });
});

// The example verifier's canonical JSON is the broker's (sorted keys at every depth, "__proto__" kept).
test('the jose-only example hashes arguments as the broker does', () => {
  const args = JSON.parse('{"b":[{"z":1,"a":null}],"a":"é","__proto__":{"x":1}}') as Record<string, unknown>;
  expect(canonicalJson(args)).toBe(brokersCanonicalJson(args));
});
