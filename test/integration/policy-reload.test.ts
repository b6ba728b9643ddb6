import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalSecretStore, createLocalSource } from '../../adapters/local';
import type { CredentialSource } from '../../src/credentials/credential-source';
import { sha256Hex } from '../../src/crypto/hash';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { loadPolicyFile } from '../../src/policy/load';
import { isolationPolicy, startHarness, type Harness } from '../support/broker-harness';
import { callId, expectAllow, expectDeny } from '../support/isolation-assertions';

/**
 * Live policy reload on the embedded default, through POST /v1/policy/reload against a real policy
 * file: a new tenant serves at once, a removed principal is denied on its next call, a bad policy (bad
 * shape, broken references, an unreadable file, a setting that needs a restart) is refused whole while
 * the old one keeps serving, a call in flight finishes under the policy it started with, and every
 * audit record names the version it was decided under.
 */
jest.setTimeout(60_000);

let h: Harness;
let policyFile: string;
let gate: Promise<void> | null = null;

const mapValues = (o: Record<string, string>, f: (v: string) => string) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));

/** The harness's policy as the raw document a user writes, for a test to edit and save. */
function rawPolicy(): any {
  let raw: any;
  isolationPolicy({ servers: mapValues(h.serverKeys, sha256Hex), operator: sha256Hex(h.operatorToken), clients: mapValues(h.clientSecrets, sha256Hex) }, (r) => {
    raw = structuredClone(r);
  });
  return raw;
}
const save = (doc: unknown) => writeFileSync(policyFile, typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2));
const reload = () => h.post('/v1/policy/reload', {}, h.operatorToken);
const version = async () => (await h.get('/readyz')).body.policy_version as string;
const query = (token: string, tenant = 'acme') => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${tenant}/accounts/1` }, call_id: callId('reload') });

/** A local source that can be held mid-resolve, to keep a call in flight across a reload. */
function gatedLocalSource(): CredentialSource {
  let inner: CredentialSource | undefined;
  return {
    sources: ['local'],
    async resolve(request) {
      inner ??= createLocalSource(createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }));
      if (gate) await gate;
      return inner.resolve(request);
    },
  };
}

beforeAll(async () => {
  h = await startHarness({ brokerOptions: { loadPolicy: () => loadPolicyFile(policyFile), sources: [gatedLocalSource()] } });
  policyFile = join(h.dataDir, 'policy.json');
  save(rawPolicy());
}, 120_000);
afterAll(async () => {
  await h?.close();
});

test('reloading an unchanged file is a no-op that names the version serving', async () => {
  const before = await version();
  const answer = await reload();
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ changed: false, version: before, previous_version: before });
  expect(before).toMatch(/^[0-9a-f]{16}$/);
});

test('a new tenant serves from the next call, and its audit names the new version', async () => {
  const doc = rawPolicy();
  doc.tenants.hooli = structuredClone(doc.tenants.acme);
  doc.tenants.hooli.principals = { 'hooli-agent': { secret_sha256: sha256Hex('hooli-secret-' + 'x'.repeat(32)), tools: ['query_crm'] } };
  doc.tenants.hooli.tools.query_crm.resource.prefix = 'hooli/';
  save(doc);
  await createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }).set('hooli', 'crm', 'hooli-upstream-value');

  const before = await version();
  const answer = await reload();
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ changed: true, previous_version: before, diff: { tenants: { added: ['hooli'], removed: [], changed: [] } } });
  const after = answer.body.version as string;
  expect(after).not.toBe(before);
  expect(await version()).toBe(after);
  expect(await (await fetch(`${h.url}/metrics`)).text()).toContain(`bulkhead_policy_info{version="${after}"} 1`);

  const issued = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'hooli-agent', client_secret: 'hooli-secret-' + 'x'.repeat(32), audience: 'crm-mcp' });
  expect(issued.status).toBe(200);
  const allowed = await query(issued.body.access_token, 'hooli');
  expect([allowed.status, allowed.body.decision, allowed.body.tenant, allowed.body.credential?.value]).toEqual([200, 'allow', 'hooli', 'hooli-upstream-value']);

  // The gated source can hang (it is an upstream to the broker), so the call records its intent first;
  // a read after the answer sees the allow too (audit/read-after-append.ts).
  const events = (await h.get('/v1/audit?tenant=hooli', h.operatorToken)).body.events as any[];
  expect(events.map((e) => [e.type, e.decision, e.policy_version])).toEqual([
    ['policy', undefined, after],
    ['authorize', 'intent', after],
    ['authorize', 'allow', after],
  ]);
  expect(events[0]).toMatchObject({ operator: 'ops', detail: `policy ${before} -> ${after}` });
});

test('a removed principal is denied from its next call; its tenant neighbours are not', async () => {
  const readerToken = await h.token('acme-reader', 'crm-mcp');
  const agentToken = await h.token('acme-agent', 'crm-mcp');
  expectAllow(h, await query(readerToken), 'acme');

  const doc = rawPolicy();
  delete doc.tenants.acme.principals['acme-reader'];
  save(doc);
  const answer = await reload();
  expect(answer.status).toBe(200);
  expect(answer.body.diff.tenants.details.acme).toEqual({ principals: { added: [], removed: ['acme-reader'], changed: [] } });

  expectDeny(h, await query(readerToken), 403, 'token_revoked');
  const manifest = await h.post('/v1/manifest', { token: readerToken }, h.serverKeys['crm-mcp']);
  expect(manifest.body.tools ?? []).toEqual([]);
  // It cannot get a new token either, and the rest of the tenant is untouched.
  const again = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'acme-reader', client_secret: h.clientSecrets['acme-reader']!, audience: 'crm-mcp' });
  expect(again.status).toBe(401);
  expectAllow(h, await query(agentToken), 'acme');
  // The removed tenant "hooli" (not in this file) is gone too.
  expect(answer.body.diff.tenants.removed).toEqual(['hooli']);
});

describe('a bad policy is refused whole, and the old one keeps serving', () => {
  const cases: Array<[string, () => unknown, RegExp[]]> = [
    [
      'two shape errors in different tenants (both reported)',
      () => {
        const doc = rawPolicy();
        doc.tenants.acme.quotas.calls_per_minute = -1;
        doc.tenants.globex.principals['globex-agent'].secret_sha256 = 'not-a-digest';
        doc.tenants.initech.tools.query_crm.approval = 'yes';
        return doc;
      },
      [/tenants\.acme\.quotas\.calls_per_minute/, /tenants\.globex\.principals\.globex-agent\.secret_sha256/, /tenants\.initech\.tools\.query_crm\.approval/],
    ],
    [
      'a broken reference beside a valid new tenant (nothing of it applied)',
      () => {
        const doc = rawPolicy();
        doc.tenants.newco = structuredClone(doc.tenants.acme);
        doc.tenants.globex.tools.query_crm.credential = 'nowhere';
        return doc;
      },
      [/tenants\.globex\.tools\.query_crm\.credential: unknown credential "nowhere"/],
    ],
    ['a truncated file', () => JSON.stringify(rawPolicy()).slice(0, 200), [/not valid JSON/]],
    [
      'a broker setting, which takes effect only at a restart',
      () => {
        const doc = rawPolicy();
        doc.broker.token_ttl = '5m';
        doc.tenants.acme.quotas.calls_per_minute = 7;
        return doc;
      },
      [/broker\.token_ttl: takes effect only at a restart/],
    ],
    ['an unknown key', () => ({ ...rawPolicy(), tenant: {} }), [/unknown key "tenant"/]],
  ];

  test.each(cases)('%s', async (_name, build, expected) => {
    save(rawPolicy());
    await reload();
    const serving = await version();
    const token = await h.token('acme-agent', 'crm-mcp');

    save(build() as object);
    const answer = await reload();
    expect(answer.status).toBe(422);
    expect(answer.body.error).toBe('policy_invalid');
    for (const pattern of expected) expect((answer.body.issues as string[]).some((i) => pattern.test(i))).toBe(true);

    expect(await version()).toBe(serving);
    expectAllow(h, await query(token), 'acme');
    const newco = await h.post('/v1/token', { grant_type: 'client_credentials', client_id: 'newco/acme-agent', client_secret: h.clientSecrets['acme-agent']!, audience: 'crm-mcp' });
    expect(newco.status).toBe(401);
    expect(await (await fetch(`${h.url}/metrics`)).text()).toMatch(/bulkhead_policy_reloads_total\{result="refused"\} [1-9]/);
  });
});

test('a call in flight finishes under the policy it started with; the next call sees the new one', async () => {
  save(rawPolicy());
  await reload();
  const started = await version();
  const token = await h.token('acme-agent', 'crm-mcp');

  let release!: () => void;
  gate = new Promise<void>((resolve) => (release = resolve));
  const inFlight = query(token);
  // Wait until the call is inside the credential resolve (it holds a concurrency slot by then).
  for (let i = 0; i < 200 && (await h.get('/v1/tenants/acme', h.operatorToken)).body.quota.in_flight === 0; i++) await new Promise((r) => setTimeout(r, 10));

  const doc = rawPolicy();
  doc.tenants.acme.principals['acme-agent'].tools = ['export_report'];
  save(doc);
  const answer = await reload();
  expect(answer.status).toBe(200);
  gate = null;
  release();

  const first = await inFlight;
  expectAllow(h, first, 'acme');
  const events = (await h.get('/v1/audit?tenant=acme&limit=10000', h.operatorToken)).body.events as any[];
  expect(events.find((e) => e.call_id === first.body.call_id && e.decision === 'allow')?.policy_version).toBe(started);

  const next = await query(token);
  expectDeny(h, next, 403, 'tool_not_allowed');
  expect(events.length).toBeGreaterThan(0);
  const denied = (await h.get('/v1/audit?tenant=acme&limit=10000', h.operatorToken)).body.events.find((e: any) => e.call_id === next.body.call_id);
  expect(denied).toMatchObject({ decision: 'deny', reason: 'tool_not_allowed', policy_version: answer.body.version });
});

test('reload is for operators only, takes no policy over HTTP, and the chain still verifies', async () => {
  expect((await h.post('/v1/policy/reload', {})).status).toBe(401);
  expect((await h.post('/v1/policy/reload', {}, h.serverKeys['crm-mcp'])).status).toBe(401);
  const upload = await h.post('/v1/policy/reload', { tenants: {} }, h.operatorToken);
  expect([upload.status, upload.body.error]).toEqual([400, 'bad_request']);
  for (const tenant of ['acme', 'globex', 'initech']) expect([tenant, (await h.get(`/v1/audit/verify?tenant=${tenant}`, h.operatorToken)).body]).toEqual([tenant, expect.objectContaining({ ok: true })]);
});

test('a broker started without a policy file refuses a reload and says why', async () => {
  const plain = await startHarness();
  try {
    const answer = await plain.post('/v1/policy/reload', {}, plain.operatorToken);
    expect(answer.status).toBe(422);
    expect(answer.body.message).toMatch(/started without a policy file/);
  } finally {
    await plain.close();
  }
});
