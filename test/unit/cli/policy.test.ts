import { stringify as toYaml } from 'yaml';
import { sha256Hex } from '../../../src/crypto/hash';
import { parsePolicy } from '../../../src/policy/load';
import { policyVersion } from '../../../src/policy/version';
import { tempDir, validPolicy, type TempDir } from '../policy/policy-fixtures';
import { ensureBuilt, freePort, runCli, startServe, type RunningServe } from './cli-harness';
import { until } from '../../support/until';

/**
 * `bulkhead policy check|diff|reload` and SIGHUP through the built CLI: check reports every error of a
 * file (not just the first) and exits 2, diff names what changes per tenant, and a real `serve` reloads
 * its file on SIGHUP, keeps serving the old policy when the new one is bad, and stays alive.
 */
jest.setTimeout(60_000);

let dir: TempDir;
beforeAll(async () => {
  ensureBuilt();
  dir = await tempDir();
});
afterAll(async () => {
  await dir?.cleanup();
});

describe('policy check', () => {
  test('a valid file: exit 0 and the version a broker would report, in text and JSON, YAML or JSON alike', async () => {
    const yaml = await dir.write('ok.yaml', validPolicy());
    const json = await dir.write('ok.json', validPolicy());
    const expected = policyVersion(parsePolicy(validPolicy()));
    const text = await runCli(['policy', 'check', yaml]);
    expect([text.code, text.stderr]).toEqual([0, '']);
    expect(text.stdout).toBe(`${yaml}: ok, version ${expected} (1 tenants, 1 servers, 1 operators)\n`);
    const asJson = await runCli(['policy', 'check', json, '--json']);
    expect(asJson.code).toBe(0);
    expect(JSON.parse(asJson.stdout)).toEqual({ file: json, ok: true, version: expected, tenants: 1, servers: 1, operators: 1 });
  });

  test('layout, comments and spelled-out defaults do not change the version; content does', async () => {
    const plain = validPolicy();
    delete plain.broker.rotation;
    const spelled = validPolicy();
    const commented = `# a comment\n${toYaml(spelled)}\n# another\n`;
    const versions = await Promise.all([dir.write('plain.yaml', plain), dir.write('commented.yaml', commented)].map(async (p) => JSON.parse((await runCli(['policy', 'check', await p, '--json'])).stdout).version));
    expect(versions[0]).toBe(versions[1]);
    const changed = validPolicy();
    changed.tenants.acme.quotas.concurrency = 9;
    const other = JSON.parse((await runCli(['policy', 'check', await dir.write('changed.yaml', changed), '--json'])).stdout).version;
    expect(other).not.toBe(versions[0]);
  });

  test('every shape error is reported, one line each, exit 2', async () => {
    const bad = validPolicy();
    bad.broker.token_ttl = 'soon';
    bad.operators.ops.token_sha256 = 'ABC';
    bad.tenants.acme.quotas.calls_per_minute = 0;
    bad.tenants.acme.tools.query_crm.colour = 'red';
    bad.servers['crm-mcp'].tools = 'query_crm';
    const file = await dir.write('bad.yaml', bad);
    const result = await runCli(['policy', 'check', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(5);
    for (const path of ['broker.token_ttl', 'operators.ops.token_sha256', 'tenants.acme.quotas.calls_per_minute', 'tenants.acme.tools.query_crm: unknown key "colour"', 'servers.crm-mcp.tools']) {
      expect(lines.some((l) => l.startsWith(`${file}: ${path}`))).toBe(true);
    }
    const json = await runCli(['policy', 'check', file, '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ file, ok: false, issues: expect.arrayContaining([expect.stringMatching(/^broker\.token_ttl/)]) });
    expect(JSON.parse(json.stdout).issues).toHaveLength(5);
  });

  test('every reference error is reported once the shape is valid', async () => {
    const bad = validPolicy();
    bad.tenants.acme.tools.query_crm.credential = 'missing';
    bad.tenants.acme.principals['acme-agent'].tools = ['query_crm', 'nope'];
    bad.tenants.acme.tools.export_report.inject = { tenant_id: 'globex' };
    const result = await runCli(['policy', 'check', await dir.write('refs.json', bad)]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/tenants\.acme\.tools\.query_crm\.credential: unknown credential "missing"/);
    expect(result.stderr).toMatch(/tenants\.acme\.principals\.acme-agent\.tools\.1: unknown tool "nope"/);
    expect(result.stderr).toMatch(/tenants\.acme\.tools\.export_report\.inject: must not inject tenant identifiers/);
  });

  test('unreadable and unparsable files, and usage mistakes, name the problem', async () => {
    const missing = await runCli(['policy', 'check', `${dir.dir}/nope.yaml`]);
    expect([missing.code, missing.stderr]).toEqual([2, `${dir.dir}/nope.yaml: cannot read policy file (ENOENT)\n`]);
    const broken = await runCli(['policy', 'check', await dir.write('broken.json', '{"tenants": ')]);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/not valid JSON/);
    for (const args of [['policy', 'check'], ['policy', 'check', 'a', 'b'], ['policy', 'frobnicate'], ['policy', 'diff', 'a'], ['policy', 'check', 'x', '--colour']]) {
      const result = await runCli(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/bulkhead policy: .*see bulkhead policy --help/);
    }
    const help = await runCli(['policy', '--help']);
    expect([help.code, help.stdout]).toEqual([0, expect.stringContaining('bulkhead policy check FILE')]);
  });
});

describe('policy diff', () => {
  test('names tools, principals, credentials and quotas added, removed and changed per tenant', async () => {
    const before = validPolicy();
    const after = validPolicy();
    after.tenants.acme.tools.send_email = { credential: 'mail', approval: true };
    after.tenants.acme.credentials.mail = { source: 'local', name: 'mail' };
    delete after.tenants.acme.tools.export_report;
    after.tenants.acme.principals['acme-agent'].tools = ['query_crm', 'send_email'];
    after.tenants.acme.principals['acme-bot'] = { secret_sha256: sha256Hex('bot'), tools: ['query_crm'] };
    after.tenants.acme.quotas.calls_per_minute = 60;
    after.tenants.globex = structuredClone(before.tenants.acme);
    after.broker.token_ttl = '10m';
    const [a, b] = await Promise.all([dir.write('before.yaml', before), dir.write('after.yaml', after)]);

    const json = await runCli(['policy', 'diff', a, b, '--json']);
    expect(json.code).toBe(0);
    const diff = JSON.parse(json.stdout);
    expect(diff).toMatchObject({
      old: policyVersion(parsePolicy(before)),
      new: policyVersion(parsePolicy(after)),
      same: false,
      tenants: {
        added: ['globex'],
        removed: [],
        changed: ['acme'],
        details: {
          acme: {
            tools: { added: ['send_email'], removed: ['export_report'], changed: [] },
            principals: { added: ['acme-bot'], removed: [], changed: ['acme-agent'] },
            credentials: { added: ['mail'], removed: [], changed: [] },
            quotas: { old: { calls_per_minute: 600, concurrency: 8 }, new: { calls_per_minute: 60, concurrency: 8 } },
          },
        },
      },
      broker: ['broker.token_ttl'],
    });
    // Names only: a digest from the file never appears in the output.
    expect(json.stdout).not.toContain(sha256Hex('bot'));

    const text = await runCli(['policy', 'diff', a, b]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('+ tenants: globex');
    expect(text.stdout).toContain('~ tenant acme');
    expect(text.stdout).toContain('    + tools: send_email');
    expect(text.stdout).toContain('    - tools: export_report');
    expect(text.stdout).toContain('~ broker (restart needed): broker.token_ttl');

    const same = await runCli(['policy', 'diff', a, a]);
    expect(same.stdout).toMatch(/^no change \(version [0-9a-f]{16}\)\n$/);
  });

  test('a bad side is exit 2 naming its file, nothing printed as a diff', async () => {
    const good = await dir.write('good.yaml', validPolicy());
    const broken = validPolicy();
    broken.tenants.acme.quotas.concurrency = -3;
    const bad = await dir.write('bad-side.yaml', broken);
    const result = await runCli(['policy', 'diff', good, bad]);
    expect([result.code, result.stdout]).toEqual([2, '']);
    expect(result.stderr).toMatch(new RegExp(`^${bad}: tenants\\.acme\\.quotas\\.concurrency`));
  });
});

describe('SIGHUP on a running serve', () => {
  let serve: RunningServe;
  let file: string;
  const readyz = async () => (await (await fetch(`${serve.url}/readyz`)).json()) as { policy_version: string };

  beforeAll(async () => {
    const doc = validPolicy();
    file = await dir.write('served.yaml', doc);
    const port = await freePort();
    doc.broker.issuer = `http://127.0.0.1:${port}`;
    await dir.write('served.yaml', doc);
    serve = await startServe(['--config', file, '--data-dir', `${dir.dir}/data`, '--port', String(port)], /"url":"(http:\/\/127\.0\.0\.1:\d+)"/, { BULKHEAD_LOG_LEVEL: 'info' });
  });
  afterAll(async () => {
    await serve?.stop();
  });


  test('reloads the file: the new version serves, the process lives on', async () => {
    const started = (await readyz()).policy_version;
    const doc = validPolicy();
    doc.broker.issuer = new URL(serve.url).origin;
    doc.tenants.acme.quotas.concurrency = 3;
    await dir.write('served.yaml', doc);
    const expected = policyVersion(parsePolicy(doc));
    serve.child.kill('SIGHUP');
    await until(async () => (await readyz()).policy_version === expected, 'serve did not reload on SIGHUP');
    expect(expected).not.toBe(started);
    expect(serve.child.exitCode).toBeNull();
    // The heap is looked at once after the start and once after each applied reload; this policy is
    // small, so nothing is collected (runtime/release-heap.ts; its unit test covers a large heap).
    await until(async () => heapLines('after a policy reload').length === 1, 'serve did not look at the heap after the reload');
    expect(heapLines('after the start')).toHaveLength(1);
    for (const line of [...heapLines('after the start'), ...heapLines('after a policy reload')]) {
      expect(line.msg).toMatch(/^heap small after .*: nothing to release$/);
      expect(line.committed_mb).toBeLessThan(64);
    }
  });

  const heapLines = (when: string) =>
    serve
      .output()
      .split('\n')
      .filter((l) => l.includes(` ${when}`) && l.includes('heap'))
      .map((l) => JSON.parse(l) as { msg: string; committed_mb: number; rss_before_mb: number; rss_after_mb: number });

  test('a bad file on SIGHUP is logged and refused; the old policy keeps serving', async () => {
    const serving = (await readyz()).policy_version;
    await dir.write('served.yaml', 'tenants: [unclosed');
    serve.child.kill('SIGHUP');
    await until(async () => serve.output().includes('policy reload refused'), 'serve did not log the refused reload');
    expect((await readyz()).policy_version).toBe(serving);
    expect(serve.child.exitCode).toBeNull();
    expect(await serve.stop()).toBe(0);
  });
});
