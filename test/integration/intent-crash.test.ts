import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex } from '../../src/crypto/hash';
import { isolationPolicy } from '../support/broker-harness';
import { CLI, ensureBuiltCli, runCli } from '../support/built-cli';
import { freePort } from '../support/free-port';
import { gatedProxy } from '../support/gated-proxy';
import { KV_READ } from '../support/in-flight-kills';
import { until } from '../support/until';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { bootstrapBao, type BaoFixture } from './support/bao-bootstrap';
import { withUpstreams } from './support/upstream-policy';

/**
 * The audit write overlaps the upstream read: a call whose credential comes from OpenBao is recorded as
 * an intent while the read is in flight, and the credential leaves the broker only once that intent is
 * durable; the allow (or deny) follows. Here `bulkhead serve` runs as a process in front of a real
 * OpenBao behind a proxy that holds the KV read; the broker is killed with SIGKILL while it waits, after
 * its intent is on disk. `bulkhead audit verify` must then say exactly that: the stream is intact and one
 * call is unfinished (it may have received its credential). A restarted broker goes on with the same
 * stream, and the unfinished call stays listed: nothing after it can finish a call the broker forgot.
 */
jest.setTimeout(90_000);

const random = () => randomBytes(24).toString('base64url');

describeWithUpstream(['bao'], 'a broker killed between the intent and the allow', () => {
  const env = upstreamEnv();
  const vault = gatedProxy(() => env.VAULT_ADDR);
  const serverKey = random();
  const operatorToken = random();
  const clientSecret = random();
  let dir: string;
  let dataDir: string;
  let policyFile: string;
  let bao: BaoFixture;
  let broker: { child: ChildProcess; url: string } | undefined;

  async function serve(): Promise<{ child: ChildProcess; url: string }> {
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'serve', '--config', policyFile, '--data-dir', dataDir, '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const url = `http://127.0.0.1:${port}`;
    await until(async () => {
      if (child.exitCode !== null) throw new Error(`bulkhead serve exited ${child.exitCode}: ${stderr}`);
      return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200;
    }, 'bulkhead serve did not become ready', 1200);
    return { child, url };
  }

  async function token(url: string): Promise<string> {
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'acme-agent', client_secret: clientSecret, audience: 'crm-mcp' });
    const answer = await fetch(`${url}/v1/token`, { method: 'POST', body });
    expect(answer.status).toBe(200);
    return ((await answer.json()) as { access_token: string }).access_token;
  }

  const authorize = (url: string, accessToken: string, callId: string) =>
    fetch(`${url}/v1/authorize`, {
      method: 'POST',
      headers: { authorization: `Bearer ${serverKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ token: accessToken, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: callId }),
    });

  const records = async () =>
    (await readFile(join(dataDir, 'audit', 'acme.jsonl'), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  const verify = async () => {
    const run = await runCli(['audit', 'verify', '--data-dir', dataDir, '--tenant', 'acme', '--json']);
    return { code: run.code, result: JSON.parse(run.stdout).tenants[0], text: (await runCli(['audit', 'verify', '--data-dir', dataDir, '--tenant', 'acme'])).stdout };
  };

  beforeAll(async () => {
    await ensureBuiltCli();
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-intent-crash-'));
    dataDir = join(dir, 'data');
    policyFile = join(dir, 'policy.json');
    bao = await bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants: ['acme', 'globex', 'initech'], dir });
    let raw: unknown;
    const hashes = {
      servers: { 'crm-mcp': sha256Hex(serverKey), 'mail-mcp': sha256Hex(random()) },
      operator: sha256Hex(operatorToken),
      clients: Object.fromEntries(['acme', 'globex', 'initech'].flatMap((t) => [[`${t}-agent`, sha256Hex(clientSecret)], [`${t}-reader`, sha256Hex(random())]])),
    };
    // The policy the harness tenants use, on OpenBao (behind the proxy), as the file an operator writes.
    isolationPolicy(hashes, (p) => {
      withUpstreams({ vaultAddr: vault.url, bao, timeout: '60s' })(p);
      raw = structuredClone(p);
    });
    await writeFile(policyFile, JSON.stringify(raw));
  });
  afterAll(async () => {
    vault.release();
    broker?.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  test('an allowed call leaves its intent, then its allow; both name the call, only the allow names the credential', async () => {
    broker = await serve();
    const answer = await authorize(broker.url, await token(broker.url), 'whole-1');
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { credential: { value: string } }).credential.value).toBe(bao.tenants.acme!.kvSecret.api_key);
    // The answer waited for the intent only; the allow is durable moments later (the next batch).
    const calls = (await records()).filter((r) => r.call_id === 'whole-1');
    expect(calls[0]!.decision).toBe('intent');
    await until(async () => (await records()).filter((r) => r.call_id === 'whole-1').length === 2, 'the allow record did not follow the intent', 400);
    calls.splice(0, calls.length, ...(await records()).filter((r) => r.call_id === 'whole-1'));
    expect(calls.map((r) => r.decision)).toEqual(['intent', 'allow']);
    expect(calls[0]).not.toHaveProperty('credential_ref');
    expect(calls[1]!.credential_ref).toBe(`vault:${bao.tenants.acme!.kvPath}#api_key@v1`);
    expect(calls[0]!.arguments_mac).toBe(calls[1]!.arguments_mac);
  });

  test('audit unwritable: the OpenBao credential is read but never released (503 audit_unavailable); back once the file is', async () => {
    const file = join(dataDir, 'audit', 'acme.jsonl');
    const before = await records();
    const accessToken = await token(broker!.url);
    const apiKey = bao.tenants.acme!.kvSecret.api_key;
    const readsBefore = vault.responses().split(apiKey).length;
    // As root, chmod does not stop writes: put a directory where the stream's file was instead.
    await rename(file, `${file}.aside`);
    await mkdir(file);
    let refused;
    try {
      refused = await authorize(broker!.url, accessToken, 'audit-down-1');
    } finally {
      await rmdir(file);
      await rename(`${file}.aside`, file);
    }
    const body = await refused.text();
    expect(refused.status).toBe(503);
    expect(JSON.parse(body)).toMatchObject({ decision: 'deny', reason: 'audit_unavailable' });
    // OpenBao did answer the read (it overlapped the intent's failed write); the value stayed in the broker.
    expect(vault.responses().split(apiKey).length).toBeGreaterThan(readsBefore);
    expect(body).not.toContain(apiKey);
    const back = await authorize(broker!.url, accessToken, 'audit-back-1');
    expect(back.status).toBe(200);
    const after = await records();
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.filter((r) => r.call_id === 'audit-down-1')).toEqual([]);
  });

  test('SIGKILL while the read is held, after the intent is durable: verify passes and lists the call as unfinished', async () => {
    const accessToken = await token(broker!.url);
    vault.hold(KV_READ);
    const pending = authorize(broker!.url, accessToken, 'crashed-1').then(
      (r) => r.status,
      () => 'no answer',
    );
    await vault.held();
    await until(async () => (await records()).some((r) => r.call_id === 'crashed-1' && r.decision === 'intent'), 'the intent record did not reach the audit file', 400);
    broker!.child.kill('SIGKILL');
    await new Promise((resolve) => broker!.child.once('exit', resolve));
    expect(await pending).toBe('no answer');

    const { code, result, text } = await verify();
    expect(code).toBe(0);
    expect(result.ok).toBe(true);
    const intentSeq = (await records()).find((r) => r.call_id === 'crashed-1')!.seq;
    expect(result.unfinished).toEqual([{ seq: intentSeq, call_id: 'crashed-1' }]);
    expect(text).toContain(`UNFINISHED CALL crashed-1 at record ${intentSeq}`);
    expect(text).toMatch(/may have received its credential/);
    // Nothing else was written for the call: the broker died holding it.
    expect((await records()).filter((r) => r.call_id === 'crashed-1').map((r) => r.decision)).toEqual(['intent']);
  });

  test('a restarted broker continues the stream; the crashed call stays unfinished, the next calls finish', async () => {
    vault.release();
    broker = await serve();
    const answer = await authorize(broker.url, await token(broker.url), 'after-1');
    expect(answer.status).toBe(200);
    broker.child.kill('SIGTERM');
    await new Promise((resolve) => broker!.child.once('exit', resolve));
    broker = undefined;

    const { code, result } = await verify();
    expect(code).toBe(0);
    expect(result.ok).toBe(true);
    expect(result.unfinished.map((c: { call_id: string }) => c.call_id)).toEqual(['crashed-1']);
    // The shutdown checkpoint waited for the allow the answered call left queued, and signs it too.
    expect(result.signed_through).toBe(result.events);
    // SIGTERM: the broker writes what it accepted before it exits.
    expect((await records()).filter((r) => r.call_id === 'after-1').map((r) => r.decision)).toEqual(['intent', 'allow']);
  });

  test('an export bundle of the stream verifies offline and lists the same unfinished call', async () => {
    const bundle = join(dir, 'acme-bundle.json');
    const exported = await runCli(['audit', 'export', '--data-dir', dataDir, '--tenant', 'acme', '--out', bundle]);
    expect(exported.code).toBe(0);
    const json = await runCli(['audit', 'verify', '--bundle', bundle, '--json']);
    expect(json.code).toBe(0);
    const intentSeq = (await records()).find((r) => r.call_id === 'crashed-1')!.seq;
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, unfinished: [{ seq: intentSeq, call_id: 'crashed-1' }] });
    const text = await runCli(['audit', 'verify', '--bundle', bundle]);
    expect(text.stdout).toContain(`UNFINISHED CALL crashed-1 at record ${intentSeq}: its intent is recorded and no outcome is in the bundle`);
  });
});
