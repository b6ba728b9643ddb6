import { generateKeyPairSync, sign } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyBundle } from '../../src/audit/bundle';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { callId } from '../support/isolation-assertions';
import { thirdPartyVerify } from '../support/third-party-bundle-verifier';

/**
 * What an auditor can take away: a bundle of one tenant's trail that verifies with stock libraries and
 * none of Bulkhead's code, that never carries another tenant's record, and that no edit survives;
 * the audit search; and the one operator join from a platform request id to the tenant record.
 */

let h: Harness;
let work: string;
const requestIds: Record<string, string[]> = { acme: [], globex: [] };

beforeAll(async () => {
  [h] = await Promise.all([startHarness({ overrides: (p) => (p.broker.audit = { checkpoint_every: 4, checkpoint_interval: '1h' }) }), ensureBuiltCli()]);
  work = await mkdtemp(join(tmpdir(), 'bulkhead-audit-export-'));
  for (const tenant of ['acme', 'globex'] as const) {
    const agent = await h.token(`${tenant}-agent`, 'crm-mcp');
    const reader = await h.token(`${tenant}-reader`, 'crm-mcp');
    for (let i = 0; i < 5; i += 1) {
      const allow = await h.authorize('crm-mcp', { token: agent, tool: 'query_crm', arguments: { path: `${tenant}/r${i}` }, call_id: callId(`${tenant}-allow-${i}`) });
      expect(allow.status).toBe(200);
      requestIds[tenant]!.push(allow.headers.get('x-request-id')!);
    }
    for (let i = 0; i < 3; i += 1) {
      const deny = await h.authorize('crm-mcp', { token: reader, tool: 'export_report', arguments: {}, call_id: callId(`${tenant}-deny-${i}`) });
      expect(deny.body.reason).toBe('tool_not_allowed');
    }
  }
}, 180_000);

afterAll(async () => {
  await h?.close();
  await rm(work, { recursive: true, force: true });
});

const op = () => h.operatorToken;
const exportOf = async (query: string) => (await h.get(`/v1/audit/export?${query}`, op())).body;
const publishedKeys = async () => (await h.get('/.well-known/bulkhead-audit-keys.json')).body;

describe('export bundles', () => {
  it('publishes the audit keys without authentication, public halves only, each kid its RFC 7638 thumbprint', async () => {
    const answer = await h.get('/.well-known/bulkhead-audit-keys.json');
    expect(answer.status).toBe(200);
    expect(answer.body.keys.length).toBeGreaterThanOrEqual(2);
    for (const key of answer.body.keys) {
      expect(Object.keys(key).sort()).toEqual(['alg', 'created_at', 'crv', 'kid', 'kty', 'status', 'use', 'x']);
      expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    }
  });

  it('a bundle from GET /v1/audit/export verifies with node:crypto and canonicalize alone, against the published keys', async () => {
    const bundle = await exportOf('tenant=acme');
    expect(bundle.manifest).toMatchObject({ tenant: 'acme', selection: { first_seq: 1 } });
    expect(bundle.records.length).toBeGreaterThanOrEqual(8);
    expect(thirdPartyVerify(bundle, (await publishedKeys()).keys)).toEqual([]);
    expect(verifyBundle(bundle, await publishedKeys())).toMatchObject({ ok: true, tenant: 'acme' });
  });

  it("never carries another tenant's record, and each tenant's bundle holds all of its own calls", async () => {
    for (const [tenant, other] of [['acme', 'globex'], ['globex', 'acme']] as const) {
      const bundle = await exportOf(`tenant=${tenant}`);
      const text = JSON.stringify(bundle);
      expect(bundle.records.every((r: { tenant: string }) => r.tenant === tenant)).toBe(true);
      expect(text).not.toContain(`${other}-allow-`);
      expect(text).not.toContain(`"${other}"`);
      for (const id of requestIds[tenant]!) expect(bundle.records.some((r: { request_id?: string }) => r.request_id === id)).toBe(true);
      for (const id of requestIds[other]!) expect(text).not.toContain(id);
    }
  });

  it('GET /v1/audit/checkpoints lists the signed checkpoints of one stream, each covering its own tenant', async () => {
    const answer = await h.get('/v1/audit/checkpoints?tenant=acme', op());
    expect(answer.status).toBe(200);
    expect(answer.body.invalid).toBe(0);
    expect(answer.body.checkpoints.length).toBeGreaterThanOrEqual(2);
    for (const c of answer.body.checkpoints) expect(c).toMatchObject({ kind: 'bulkhead-audit-checkpoint', tenant: 'acme', every: 4 });
    expect((await h.get('/v1/audit/checkpoints?tenant=umbrella', op())).status).toBe(404);
  });

  it('records the export in the exported tenant\'s own stream, after the bundle', async () => {
    const bundle = await exportOf('tenant=globex');
    const exports = (await h.get('/v1/audit?tenant=globex&type=export', op())).body.events;
    expect(exports[exports.length - 1]).toMatchObject({ type: 'export', operator: 'ops' });
    expect(exports[exports.length - 1].seq).toBeGreaterThan(bundle.manifest.selection.last_seq);
  });

  it('selects a time range, carrying the record before it and the records up to its covering checkpoint', async () => {
    const all = (await h.get('/v1/audit?tenant=acme&limit=1000', op())).body.events as Array<{ seq: number; ts: string }>;
    const from = all[2]!.ts;
    const to = all[4]!.ts;
    const bundle = await exportOf(`tenant=acme&from=${from}&to=${to}`);
    const inRange = all.filter((r) => r.ts >= from && r.ts <= to).map((r) => r.seq);
    expect(bundle.manifest.selection).toMatchObject({ from, to, first_seq: inRange[0], last_seq: inRange[inRange.length - 1] });
    expect(bundle.records[0].seq).toBe(inRange[0]! - 1);
    expect(bundle.checkpoints.some((c: { seq: number }) => c.seq === bundle.records[bundle.records.length - 1].seq)).toBe(true);
    expect(thirdPartyVerify(bundle, (await publishedKeys()).keys)).toEqual([]);
  });

  it('no edit of a bundle survives either verifier', async () => {
    const pristine = await exportOf('tenant=acme');
    const keys = (await publishedKeys()).keys;
    const attacker = generateKeyPairSync('ed25519');
    const attackerJwk = attacker.publicKey.export({ format: 'jwk' });
    const edits: Array<[string, (b: any) => void]> = [
      ['a deny turned into an allow', (b) => (b.records.find((r: any) => r.decision === 'deny').decision = 'allow')],
      ['a record removed from the middle', (b) => b.records.splice(3, 1)],
      ['the tail and its checkpoint cut', (b) => (b.records.pop(), b.checkpoints.pop())],
      ['the manifest moved to another tenant', (b) => (b.manifest.tenant = 'globex')],
      ['a globex record slipped in', (b) => (b.records[2] = { ...b.records[2], tenant: 'globex' })],
      [
        'everything re-signed with a key of the attacker’s',
        (b) => {
          b.keys.keys = [{ kty: 'OKP', crv: 'Ed25519', x: attackerJwk.x, kid: b.signature.kid, alg: 'EdDSA', use: 'sig', status: 'current', created_at: new Date().toISOString() }];
          b.signature.value = sign(null, Buffer.from(JSON.stringify(b.manifest)), attacker.privateKey).toString('base64url');
        },
      ],
    ];
    for (const [what, edit] of edits) {
      const bundle = structuredClone(pristine);
      edit(bundle);
      expect([what, thirdPartyVerify(bundle, keys).length > 0]).toEqual([what, true]);
      expect([what, verifyBundle(bundle, { keys }).ok]).toEqual([what, false]);
    }
  });

  it('the CLI verifies a bundle file offline (exit 0) and refuses an edited one (exit 1)', async () => {
    const file = join(work, 'acme.bundle.json');
    const keysFile = join(work, 'audit-keys.json');
    await writeFile(file, JSON.stringify(await exportOf('tenant=acme')));
    await writeFile(keysFile, JSON.stringify(await publishedKeys()));
    expect(await runCli(['audit', 'verify', '--bundle', file, '--keys', keysFile])).toMatchObject({ code: 0, stdout: expect.stringMatching(/: ok, tenant acme, \d+ records selected\n$/) });
    const edited = JSON.parse(await readFile(file, 'utf8'));
    edited.records[1].tool = 'send_email';
    await writeFile(file, JSON.stringify(edited));
    expect(await runCli(['audit', 'verify', '--bundle', file, '--keys', keysFile])).toMatchObject({ code: 1, stdout: expect.stringContaining('BROKEN') });
  });

  it('after a restart, `bulkhead audit export` writes the same kind of bundle offline, and refuses a stream with a foreign record in it', async () => {
    await h.restart();
    const copy = join(work, 'data');
    await cp(h.dataDir, copy, { recursive: true });
    const out = join(work, 'offline.bundle.json');
    const result = await runCli(['audit', 'export', '--tenant', 'acme', '--out', out, '--data-dir', copy]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const bundle = JSON.parse(await readFile(out, 'utf8'));
    expect(thirdPartyVerify(bundle, (await publishedKeys()).keys)).toEqual([]);

    const acmeFile = join(copy, 'audit', 'acme.jsonl');
    const acme = (await readFile(acmeFile, 'utf8')).split('\n');
    acme[2] = (await readFile(join(copy, 'audit', 'globex.jsonl'), 'utf8')).split('\n')[2]!;
    await writeFile(acmeFile, acme.join('\n'));
    const refused = await runCli(['audit', 'export', '--tenant', 'acme', '--out', join(work, 'refused.json'), '--data-dir', copy]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/audit does not verify \(edited: .*tenant field/);
  });

  it('checkpoints signed before an audit key rotation still verify after it', async () => {
    const before = await exportOf('tenant=acme');
    await h.broker.audit.keys.ring.rotate();
    await h.broker.audit.keys.ring.rotate();
    await h.broker.audit.append('acme', { type: 'token' });
    const after = await exportOf('tenant=acme');
    const keys = (await publishedKeys()).keys;
    expect(keys.map((k: { kid: string }) => k.kid)).toEqual(expect.arrayContaining(before.keys.keys.map((k: { kid: string }) => k.kid)));
    expect(new Set(after.checkpoints.map((c: { kid: string }) => c.kid)).size).toBeGreaterThan(1);
    expect(thirdPartyVerify(after, keys)).toEqual([]);
    expect((await h.get('/v1/audit/verify?tenant=acme', op())).body).toMatchObject({ ok: true });
  });
});

describe('audit search', () => {
  it('filters by decision, reason, tool, principal and server, and pages by seq without overlap', async () => {
    const denies = (await h.get('/v1/audit?tenant=acme&decision=deny', op())).body.events;
    expect(denies).toHaveLength(3);
    expect(denies.every((e: any) => e.decision === 'deny' && e.reason === 'tool_not_allowed' && e.tenant === 'acme')).toBe(true);
    const byAll = (await h.get('/v1/audit?tenant=acme&reason=tool_not_allowed&tool=export_report&principal=acme-reader&server=crm-mcp', op())).body.events;
    expect(byAll.map((e: any) => e.seq)).toEqual(denies.map((e: any) => e.seq));
    expect((await h.get('/v1/audit?tenant=acme&principal=globex-reader', op())).body.events).toEqual([]);

    const first = (await h.get('/v1/audit?tenant=acme&type=authorize&limit=3', op())).body;
    expect(first.events).toHaveLength(3);
    const second = (await h.get(`/v1/audit?tenant=acme&type=authorize&limit=3&after=${first.next_after}`, op())).body;
    expect(second.events[0].seq).toBeGreaterThan(first.events[2].seq);
    const all = (await h.get('/v1/audit?tenant=acme&type=authorize', op())).body.events;
    expect(all.slice(0, 6)).toEqual([...first.events, ...second.events]);
  });

  it('filters by session and time range', async () => {
    const all = (await h.get('/v1/audit?tenant=acme&type=authorize', op())).body.events;
    const session = all[0].session;
    expect((await h.get(`/v1/audit?tenant=acme&session=${session}`, op())).body.events.every((e: any) => e.session === session)).toBe(true);
    const window = (await h.get(`/v1/audit?tenant=acme&from=${all[1].ts}&to=${all[3].ts}`, op())).body.events;
    expect(window.every((e: any) => e.ts >= all[1].ts && e.ts <= all[3].ts)).toBe(true);
    expect(window.length).toBeGreaterThanOrEqual(3);
  });

  it('refuses unknown filters and malformed values with 400 and no events', async () => {
    for (const query of ['tenant=acme&tenant_id=globex', 'tenant=acme&decision=maybe', 'tenant=acme&from=yesterday', 'tenant=acme&tool=a&tool=b', 'decision=deny']) {
      const answer = await h.get(`/v1/audit?${query}`, op());
      expect([query, answer.status]).toEqual([query, 400]);
      expect(answer.body).not.toHaveProperty('events');
    }
  });

  it('`bulkhead audit show` lists the same records from the data dir', async () => {
    const api = (await h.get('/v1/audit?tenant=globex&decision=deny', op())).body.events;
    const cli = await runCli(['audit', 'show', '--tenant', 'globex', '--decision', 'deny', '--json', '--data-dir', h.dataDir]);
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout).events).toEqual(api);
    const text = await runCli(['audit', 'show', '--tenant', 'globex', '--decision', 'deny', '--data-dir', h.dataDir]);
    expect(text.stdout.trim().split('\n')).toHaveLength(api.length + 1);
  });
});

describe('cross-pipeline join', () => {
  it('a request id from the platform side leads to exactly its tenant record, and the join is recorded there', async () => {
    const id = requestIds.globex![1]!;
    const globexBefore = (await h.get('/v1/audit?tenant=globex&limit=10000', op())).body.events.length;
    const acmeBefore = (await h.get('/v1/audit?tenant=acme&limit=10000', op())).body.events.length;
    const answer = await h.get(`/v1/audit/correlate?request_id=${id}`, op());
    expect(answer.status).toBe(200);
    expect(answer.body.matches).toEqual([{ tenant: 'globex', seq: expect.any(Number), type: 'authorize', ts: expect.any(String), hash: expect.any(String) }]);
    const globex = (await h.get('/v1/audit?tenant=globex&limit=10000', op())).body.events;
    expect(globex.find((e: any) => e.seq === answer.body.matches[0].seq).request_id).toBe(id);
    expect(globex).toHaveLength(globexBefore + 1);
    expect(globex[globex.length - 1]).toMatchObject({ type: 'correlate', operator: 'ops', detail: `request ${id}`, request_id: answer.headers.get('x-request-id') });
    expect((await h.get('/v1/audit?tenant=acme&limit=10000', op())).body.events).toHaveLength(acmeBefore);
  });

  it('the platform log line of that request carries its id and no tenant', async () => {
    await h.flushLogs();
    const id = requestIds.acme![0]!;
    const lines = (await readFile(h.logFile, 'utf8')).split('\n').filter((l) => l.includes(id));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line).not.toContain('acme');
      expect(line).not.toContain('tenant');
    }
  });

  it('an unknown request id finds nothing and writes nothing; the CLI says so with exit 1', async () => {
    const before = await Promise.all(['acme', 'globex'].map(async (t) => (await h.get(`/v1/audit?tenant=${t}&limit=10000`, op())).body.events.length));
    expect((await h.get('/v1/audit/correlate?request_id=00000000-0000-0000-0000-000000000000', op())).body.matches).toEqual([]);
    const after = await Promise.all(['acme', 'globex'].map(async (t) => (await h.get(`/v1/audit?tenant=${t}&limit=10000`, op())).body.events.length));
    expect(after).toEqual(before);
    const tokenFile = join(work, 'operator-token');
    await writeFile(tokenFile, h.operatorToken);
    const cli = await runCli(['audit', 'correlate', '--request-id', requestIds.acme![2]!, '--url', h.url, '--operator-token-file', tokenFile]);
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout).matches[0].tenant).toBe('acme');
    expect((await runCli(['audit', 'correlate', '--request-id', 'nope', '--url', h.url, '--operator-token-file', tokenFile])).code).toBe(1);
  });

  it('is operator-only: a server key or no credential gets 401 and no match', async () => {
    for (const bearer of [h.serverKeys['crm-mcp'], undefined]) {
      const answer = await h.get(`/v1/audit/correlate?request_id=${requestIds.acme![0]}`, bearer);
      expect(answer.status).toBe(401);
      expect(answer.body).not.toHaveProperty('matches');
    }
  });
});
