import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSecretStore } from '../../adapters/local';
import { startCluster, type Cluster } from '../../bench/cluster';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { canaryPolicy, newCanaryFile, type CanaryFile } from '../../src/selftest/canary-file';
import { reportDigest } from '../../src/selftest/countersign';
import type { SelftestReport } from '../../src/selftest/run-selftest';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * `bulkhead selftest` through the built CLI, against a live embedded broker and a live three-replica
 * scale-out: every containment check holds, the JSON report carries one lane per canary; and against
 * a deliberately broken deployment (canary A's prefix reaches canary B's resources) it fails loudly,
 * naming the check.
 */
jest.setTimeout(120_000);

let dir: string;
beforeAll(async () => {
  await ensureBuiltCli();
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-selftest-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mergeCanaries = (file: CanaryFile, breakIt?: (canaries: any) => void) => (raw: any) => {
  const canaries = canaryPolicy(file);
  breakIt?.(canaries);
  Object.assign(raw.servers, canaries.servers);
  Object.assign(raw.tenants, canaries.tenants);
};

async function harnessWithCanaries(file: CanaryFile, breakIt?: (canaries: any) => void): Promise<Harness> {
  const h = await startHarness({ overrides: mergeCanaries(file, breakIt) });
  const store = createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) });
  for (const t of file.tenants) await store.set(t.id, 'canary', t.credential_value);
  return h;
}

async function selftest(urls: string[], file: CanaryFile, operatorToken: string) {
  const canaries = join(dir, `canaries-${Math.random().toString(36).slice(2)}.json`);
  const report = `${canaries}.report.json`;
  await writeFile(canaries, JSON.stringify(file), { mode: 0o600 });
  const t0 = Date.now();
  const result = await runCli(['selftest', '--against', urls.join(','), '--canaries', canaries, '--report', report], { BULKHEAD_OPERATOR_TOKEN: operatorToken });
  const parsed = JSON.parse(await readFile(report, 'utf8').catch(() => '{}')) as SelftestReport;
  return { ...result, report: parsed, reportFile: report, seconds: (Date.now() - t0) / 1000 };
}

describe('against the embedded default', () => {
  const file = newCanaryFile();
  let h: Harness;
  beforeAll(async () => {
    h = await harnessWithCanaries(file);
  });
  afterAll(async () => {
    await h?.close();
  });

  test('every check holds; the report has one lane per canary with the denials seen', async () => {
    const run = await selftest([h.url], file, h.operatorToken);
    expect(run.stderr).toBe('');
    const failed = run.report.checks.filter((c) => !c.ok);
    expect(failed).toEqual([]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/contained: \d+ checks held on 1 replica\(s\)/);
    expect(run.report.ok).toBe(true);
    expect(run.report.checks.length).toBeGreaterThan(25);
    expect(run.report.checks.filter((c) => c.check === 'argument MACs: keyed per tenant').map((c) => c.ok)).toEqual([true]);
    expect(run.report.digest).toMatch(/^[0-9a-f]{64}$/);
    const [a, b] = run.report.lanes;
    expect(a).toMatchObject({ tenant: file.tenants[0].id, caller: file.tenants[0].principal, quota_owner: file.tenants[0].id });
    expect(a!.typed_denial_seen).toEqual(expect.arrayContaining(['resource_out_of_scope', 'tenant_override', 'audience_mismatch', 'token_expired']));
    expect(b!.typed_denial_seen).toEqual(expect.arrayContaining(['resource_out_of_scope', 'tenant_revoked', 'session_quarantined']));
    // The real tenants were never touched.
    for (const tenant of ['acme', 'globex', 'initech']) expect((await h.get(`/v1/audit/verify?tenant=${tenant}`, h.operatorToken)).body.events).toBe(0);
    // Nothing of the canary file reached the output.
    for (const value of [...file.tenants.flatMap((t) => [t.secret, t.credential_value]), ...file.servers.map((s) => s.key)]) expect(run.stdout).not.toContain(value);
  });

  test('the report is countersigned by the broker and verifies offline against the published audit keys; any edit breaks it', async () => {
    const run = await selftest([h.url], file, h.operatorToken);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/countersigned by http:\/\/bulkhead\.test \(audit key [A-Za-z0-9_-]+\)/);
    const keys = join(dir, 'audit-keys.json');
    await writeFile(keys, JSON.stringify((await h.get('/.well-known/bulkhead-audit-keys.json')).body));
    const verify = (reportFile: string) => runCli(['selftest', 'verify-report', reportFile, '--keys', keys]);
    expect(await verify(run.reportFile)).toMatchObject({ code: 0, stdout: expect.stringContaining('every check held') });

    const original = JSON.parse(await readFile(run.reportFile, 'utf8'));
    const tampered = async (edit: (r: any) => void) => {
      const copy = structuredClone(original);
      edit(copy);
      const path = `${run.reportFile}.${Math.random().toString(36).slice(2)}.json`;
      await writeFile(path, JSON.stringify(copy));
      return verify(path);
    };
    // A check's observation edited; the digest recomputed to match; a whole check dropped; the verdict or the signature changed.
    const edits: Array<(r: any) => void> = [
      (r) => (r.checks[0].observed = 'something else'),
      (r) => {
        r.checks.pop();
        r.digest = reportDigest(r);
      },
      (r) => (r.countersignature.statement.ok = false),
      (r) => (r.countersignature.statement.signed_at = '2020-01-01T00:00:00.000Z'),
      (r) => (r.countersignature.signature.value = r.countersignature.signature.value.replace(/^./, (c: string) => (c === 'A' ? 'B' : 'A'))),
      (r) => delete r.countersignature,
    ];
    for (const edit of edits) {
      const broken = await tampered(edit);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toContain('BROKEN');
    }
    // Keys the verifier did not get from this broker prove nothing.
    const otherKeys = join(dir, 'other-keys.json');
    await writeFile(otherKeys, JSON.stringify({ keys: [] }));
    expect((await runCli(['selftest', 'verify-report', run.reportFile, '--keys', otherKeys])).code).toBe(1);
  });

  test('a second run against the same deployment holds too (the rehearsals leave it usable)', async () => {
    const run = await selftest([h.url], file, h.operatorToken);
    expect(run.report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(run.code).toBe(0);
  });
});

test("a deployment whose canary A reaches canary B's resources fails loudly, naming the checks", async () => {
  const file = newCanaryFile();
  // The policy mistake: canary A's read tool lost its resource prefix.
  const h = await harnessWithCanaries(file, (canaries) => {
    delete canaries.tenants[file.tenants[0].id].tools.canary_read.resource;
  });
  try {
    const run = await selftest([h.url], file, h.operatorToken);
    expect(run.code).toBe(1);
    expect(run.report.ok).toBe(false);
    const failed = run.report.checks.filter((c) => !c.ok).map((c) => c.check);
    expect(failed).toContain(`denied neighbour: ${file.tenants[0].id} reads "${file.tenants[1].id}/x"`);
    expect(run.stdout).toMatch(/CONTAINMENT NOT PROVEN: \d+ of \d+ checks failed/);
    expect(run.stdout).toMatch(/FAIL\s+denied neighbour/);
    // Countersigned as it is: verifying it says the report is genuine and that containment was not proven.
    const keys = join(dir, 'broken-keys.json');
    await writeFile(keys, JSON.stringify((await h.get('/.well-known/bulkhead-audit-keys.json')).body));
    const verified = await runCli(['selftest', 'verify-report', run.reportFile, '--keys', keys]);
    expect(verified).toMatchObject({ code: 2, stdout: expect.stringContaining('CONTAINMENT NOT PROVEN') });
  } finally {
    await h.close();
  }
});

test('a wrong operator token or an unreachable deployment is a failure, never a pass', async () => {
  const file = newCanaryFile();
  const h = await harnessWithCanaries(file);
  try {
    const wrong = await selftest([h.url], file, 'not-the-operator-token-0123456789abcdef');
    expect(wrong.code).toBe(1);
    expect(wrong.report.checks.some((c) => c.check.startsWith('kill switch') && !c.ok)).toBe(true);
  } finally {
    await h.close();
  }
  const down = await selftest(['http://127.0.0.1:9'], file, 'x'.repeat(40));
  expect(down.code).not.toBe(0);
});

describeWithUpstream(['postgres', 'redis'], 'against a three-replica scale-out', () => {
  const env = upstreamEnv();
  const file = newCanaryFile();
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({
      replicas: 3,
      redisUrl: env.REDIS_URL,
      adminDatabaseUrl: env.DATABASE_URL,
      label: 'selftest',
      extendPolicy: mergeCanaries(file),
      secrets: file.tenants.map((t) => ({ tenant: t.id, name: 'canary', value: t.credential_value })),
    });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  test('every check holds on every replica', async () => {
    const run = await selftest(cluster.replicas.map((r) => r.url), file, cluster.operatorToken);
    expect(run.report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(run.code).toBe(0);
    expect(new Set(run.report.checks.map((c) => c.replica)).size).toBeGreaterThanOrEqual(3);
    expect(run.stdout).toMatch(/held on 3 replica\(s\)/);
    // One MAC for a canary's equal reads although three replicas decided them: the key is shared.
    expect(run.report.checks.find((c) => c.check === 'argument MACs: keyed per tenant')).toMatchObject({ ok: true, observed: expect.stringContaining('1 distinct MAC(s)') });
  });
});
