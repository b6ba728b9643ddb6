import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_FILE, type DemoCredentials } from '../../../src/policy/demo';
import { ensureBuilt, freePort, runCli, startServe, type CliResult, type RunningServe } from './cli-harness';
import { filesUnder } from '../../support/tenant-data';

/**
 * The README walkthrough, end to end, through the built CLI and plain HTTP: store a secret, start the
 * demo broker, get a token, authorize a call, be denied across tenants, revoke the session, verify the
 * audit chains; then tamper with a chain and watch verify name the record; then talk to a stopped broker.
 * Each step builds on the one before, so the tests run in order and share state.
 */

jest.setTimeout(120_000);

const SECRET = `acme-crm-from-stdin-${randomBytes(12).toString('hex')}`;
let dataDir: string;
let port: number;
let serve: RunningServe | undefined;
let url: string;
let demo: DemoCredentials;
let acmeToken: string;
const outputs: string[] = [];

beforeAll(async () => {
  ensureBuilt();
  dataDir = await mkdtemp(join(tmpdir(), 'bulkhead-cli-walkthrough-'));
  port = await freePort();
}, 240_000);

afterAll(async () => {
  await serve?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

async function cli(args: string[], stdin?: string): Promise<CliResult> {
  const result = await runCli(args, { stdin });
  outputs.push(result.stdout, result.stderr);
  return result;
}

const common = () => ['--data-dir', dataDir, '--url', url];

async function authorize(body: Record<string, unknown>): Promise<{ status: number; json: any }> {
  const response = await fetch(`${url}/v1/authorize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${demo.server.key}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

it('secret set stores a value read from standard input without echoing it', async () => {
  const result = await cli(['secret', 'set', '--tenant', 'acme', '--name', 'crm', '--data-dir', dataDir], `${SECRET}\n`);
  expect(result.code).toBe(0);
  expect(result.stderr).toBe('');
  expect(result.stdout).toBe(`stored secret "crm" for tenant "acme" in ${dataDir}\n`);
});

it('serve with no --config starts the demo on the chosen port and prints how to get a token', async () => {
  serve = await startServe(['--data-dir', dataDir, '--port', String(port)], /running on the demo policy at (\S+)[\s\S]*See README\.md/);
  url = serve.url;
  expect(url).toBe(`http://127.0.0.1:${port}`);
  expect(serve.output()).toContain(`bulkhead token --client-id acme-agent --audience demo-mcp --data-dir ${dataDir} --url ${url}`);
  expect(serve.output()).toContain(join(dataDir, DEMO_FILE));
  demo = JSON.parse(await readFile(join(dataDir, DEMO_FILE), 'utf8')) as DemoCredentials;
  const health = await fetch(`${url}/readyz`);
  expect(health.status).toBe(200);
});

it('token prints an access token for acme\'s agent, issued by this broker', async () => {
  const result = await cli(['token', '--client-id', 'acme-agent', '--audience', 'demo-mcp', ...common()]);
  expect(result.code).toBe(0);
  expect(result.stderr).toBe('');
  acmeToken = result.stdout.trim();
  expect(acmeToken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  expect(claimsOf(acmeToken)).toMatchObject({ tid: 'acme', sub: 'acme-agent', aud: 'demo-mcp', iss: url });

  const json = await cli(['token', '--client-id', 'acme-agent', '--audience', 'demo-mcp', '--scope', 'query_crm', '--json', ...common()]);
  expect(JSON.parse(json.stdout)).toMatchObject({ token_type: 'Bearer', scope: 'query_crm', expires_in: 900 });
});

it('authorize allows acme\'s call and hands over the secret stored from stdin', async () => {
  const answer = await authorize({ token: acmeToken, tool: 'query_crm', arguments: { path: 'acme/accounts' }, call_id: 'walkthrough-1' });
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ decision: 'allow', tenant: 'acme', call_id: 'walkthrough-1', arguments: { path: 'acme/accounts', region: 'eu-west-1' } });
  expect(answer.json.credential).toMatchObject({ source: 'local', value: SECRET });
});

it('denies acme\'s token across the tenant boundary', async () => {
  // The README's two requests: a path that climbs out of acme's prefix, and a tenant id in the arguments.
  const outside = await authorize({ token: acmeToken, tool: 'query_crm', arguments: { path: 'acme/../globex/customers' } });
  expect(outside.status).toBe(403);
  expect(outside.json).toMatchObject({ decision: 'deny', reason: 'resource_out_of_scope' });
  const override = await authorize({ token: acmeToken, tool: 'query_crm', arguments: { path: 'acme/x', tenant_id: 'globex' } });
  expect(override.json).toMatchObject({ decision: 'deny', reason: 'tenant_override' });

  // globex's own agent gets globex's credential, never acme's.
  const globex = (await cli(['token', '--client-id', 'globex-agent', '--audience', 'demo-mcp', ...common()])).stdout.trim();
  const allowed = await authorize({ token: globex, tool: 'query_crm', arguments: { path: 'globex/accounts' } });
  expect(allowed.json).toMatchObject({ decision: 'allow', tenant: 'globex' });
  expect(allowed.json.credential.value).toBe(demo.secrets.globex!.crm);
});

it('revoke --session kills that session at once, and only that session', async () => {
  const sid = claimsOf(acmeToken).sid as string;
  const result = await cli(['revoke', '--session', sid, '--reason', 'walkthrough', ...common()]);
  expect(result.code).toBe(0);
  expect(JSON.parse(result.stdout)).toMatchObject({ revoked: { session: sid }, upstream_leases_revoked: 0, effective_at: expect.any(String) });

  const denied = await authorize({ token: acmeToken, tool: 'query_crm', arguments: { path: 'acme/accounts' } });
  expect(denied.status).toBe(403);
  expect(denied.json).toMatchObject({ decision: 'deny', reason: 'session_revoked' });

  const fresh = (await cli(['token', '--client-id', 'acme-agent', '--audience', 'demo-mcp', ...common()])).stdout.trim();
  expect((await authorize({ token: fresh, tool: 'query_crm', arguments: { path: 'acme/accounts' } })).json.decision).toBe('allow');
});

it('revoke --tenant, restore --tenant and keys rotate work through the CLI', async () => {
  const globex = (await cli(['token', '--client-id', 'globex-agent', '--audience', 'demo-mcp', ...common()])).stdout.trim();
  const revoked = await cli(['revoke', '--tenant', 'globex', ...common()]);
  expect(revoked.code).toBe(0);
  expect((await authorize({ token: globex, tool: 'query_crm', arguments: { path: 'globex/a' } })).json.reason).toBe('tenant_revoked');

  const restored = await cli(['restore', '--tenant', 'globex', ...common()]);
  expect(restored.code).toBe(0);
  expect(JSON.parse(restored.stdout)).toEqual({ restored: true, tenant: 'globex' });
  // Tokens issued before the revoke stay dead; a new one works.
  expect((await authorize({ token: globex, tool: 'query_crm', arguments: { path: 'globex/a' } })).json.reason).toBe('tenant_revoked');
  const after = (await cli(['token', '--client-id', 'globex-agent', '--audience', 'demo-mcp', ...common()])).stdout.trim();
  expect((await authorize({ token: after, tool: 'query_crm', arguments: { path: 'globex/a' } })).json.decision).toBe('allow');

  const rotated = await cli(['keys', 'rotate', ...common()]);
  expect(rotated.code).toBe(0);
  expect(JSON.parse(rotated.stdout)).toMatchObject({ rotated: true, current_kid: expect.any(String) });
});

it('a typo in revoke --principal is refused (exit 1, did you mean), and revocations list shows what --ttl and restore did', async () => {
  const typo = await cli(['revoke', '--principal', 'acme/acme-agnet', ...common()]);
  expect(typo.code).toBe(1);
  expect(typo.stderr).toMatch(/^bulkhead revoke: 404 unknown_target: principal "acme\/acme-agnet" is not in policy and holds no live token \(did you mean "acme\/acme-agent"\?\); nothing was revoked/);
  const unknownTenant = await cli(['revoke', '--principal', 'delta/delta-bott', ...common()]);
  expect(unknownTenant.code).toBe(1);
  expect(unknownTenant.stderr).toMatch(/404 not_found: unknown tenant "delta"/);
  // The walkthrough revoked a session earlier; no principal is revoked.
  expect((await cli(['revocations', 'list', '--kind', 'principal', ...common()])).stdout).toBe('nothing is revoked\n');

  const revoked = await cli(['revoke', '--principal', 'globex/globex-agent', '--ttl', '1h', '--reason', 'rotating its secret', ...common()]);
  expect(revoked.code).toBe(0);
  expect(JSON.parse(revoked.stdout)).toMatchObject({ revoked: { principal: 'globex/globex-agent' }, expires_at: expect.any(String) });
  const table = (await cli(['revocations', 'list', '--tenant', 'globex', ...common()])).stdout.split('\n');
  expect(table[0]).toMatch(/^KIND\s+TARGET\s+TENANT\s+REVOKED AT\s+EXPIRES AT\s+REASON$/);
  expect(table[1]).toMatch(/^principal\s+globex\/globex-agent\s+globex\s+\S+Z\s+\S+Z\s+rotating its secret$/);
  const json = JSON.parse((await cli(['revocations', 'list', '--kind', 'principal', '--tenant', 'globex', '--json', ...common()])).stdout);
  expect(json.revocations).toEqual([expect.objectContaining({ kind: 'principal', target: 'globex/globex-agent', tenant: 'globex', reason: 'rotating its secret' })]);

  const restored = await cli(['restore', '--principal', 'globex/globex-agent', '--reason', 'done rotating', ...common()]);
  expect(restored.code).toBe(0);
  expect(JSON.parse(restored.stdout)).toEqual({ restored: true, principal: 'globex/globex-agent' });
  expect((await cli(['revocations', 'list', '--kind', 'principal', ...common()])).stdout).toBe('nothing is revoked\n');
  expect((await cli(['quarantine', 'list', ...common()])).stdout).toBe('no session is quarantined\n');
  expect(JSON.parse((await cli(['quarantine', 'list', '--json', ...common()])).stdout)).toEqual({ quarantines: [] });
  const notQuarantined = await cli(['quarantine', 'lift', '--session', 'nope', '--reason', 'x', ...common()]);
  expect(notQuarantined.code).toBe(1);
  expect(notQuarantined.stderr).toMatch(/404 not_found: session "nope" is not quarantined/);
});

it('an operator command with the wrong operator token fails with exit 1 and the broker\'s reason', async () => {
  const wrong = join(dataDir, 'wrong-operator-token');
  await writeFile(wrong, 'not-the-operator-token\n');
  const result = await cli(['revoke', '--tenant', 'acme', '--operator-token-file', wrong, ...common()]);
  expect(result.code).toBe(1);
  expect(result.stderr).toBe('bulkhead revoke: 401 operator_unauthenticated: operator authentication failed\n');
});

it('audit verify exits 0 with every chain intact', async () => {
  const result = await cli(['audit', 'verify', '--data-dir', dataDir]);
  expect(result.stdout + result.stderr).not.toContain('BROKEN');
  expect(result.code).toBe(0);
  expect(result.stderr).toBe('');
  expect(result.stdout).toMatch(/^acme: ok, \d+ events, head [0-9a-f]{64}, signed through seq \d+/m);
  expect(result.stdout).toMatch(/^globex: ok, \d+ events, head [0-9a-f]{64}, signed through seq \d+/m);
});

it('serve stops cleanly on SIGTERM and never printed a secret', async () => {
  expect(await serve!.stop()).toBe(0);
  const printed = serve!.output();
  for (const secret of [SECRET, demo.server.key, demo.operator.token, ...Object.values(demo.clients).map((c) => c.secret), acmeToken]) {
    expect(printed).not.toContain(secret);
  }
  serve = undefined;
});

it('token against a stopped broker exits 1 with one clear line', async () => {
  const result = await cli(['token', '--client-id', 'acme-agent', '--audience', 'demo-mcp', ...common()]);
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(new RegExp(`^bulkhead token: cannot reach the broker at ${url.replace(/\./g, '\\.')} \\(.*ECONNREFUSED.*\\)\\n$`));
});

it('audit verify exits 1 and names the record after a line is tampered with', async () => {
  const file = join(dataDir, 'audit', 'acme.jsonl');
  const lines = (await readFile(file, 'utf8')).split('\n');
  const record = JSON.parse(lines[1]!) as Record<string, unknown>;
  expect(record.seq).toBe(2);
  // A quiet edit an insider might make: turn a deny into an allow, or an allow into a deny.
  record.decision = record.decision === 'allow' ? 'deny' : 'allow';
  lines[1] = JSON.stringify(record);
  await writeFile(file, lines.join('\n'));

  const result = await cli(['audit', 'verify', '--data-dir', dataDir]);
  expect(result.code).toBe(1);
  expect(result.stdout).toMatch(/^acme: BROKEN at record 2 \(edited\): .+$/m);
  expect(result.stdout).toMatch(/^globex: ok, /m);

  const globexOnly = await cli(['audit', 'verify', '--tenant', 'globex', '--data-dir', dataDir]);
  expect(globexOnly.code).toBe(0);
  expect(globexOnly.stdout).not.toContain('acme');
});

it('the secret from stdin is in no file in plaintext, and in no output', async () => {
  for (const path of await filesUnder(dataDir)) {
    const bytes = await readFile(path);
    expect({ path, found: bytes.includes(Buffer.from(SECRET)) }).toEqual({ path, found: false });
  }
  for (const output of outputs) expect(output).not.toContain(SECRET);
});
