import { mkdtempSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliCache, ensureBuilt, type CliOptions, type CliResult } from './cli-harness';

/**
 * The CLI's promises to a user who gets it wrong: `--help` on every verb, and exit code 2 with one line
 * naming the problem (the file and field, for a bad policy) for every usage or configuration mistake.
 * None of these commands depends on another, so beforeAll starts them all and each test reads its own.
 */

const dir = mkdtempSync(join(tmpdir(), 'bulkhead-cli-usage-'));
const cli = cliCache();
const runCli = (args: string[], options?: CliOptions) => cli.run(args, options);

const HASH = 'ab'.repeat(32);
const policyWith = (credential: string) => `servers:
  demo-mcp: { key_sha256: "${HASH}", tools: [query_crm] }
tenants:
  acme:
    principals:
      acme-agent: { secret_sha256: "${HASH}", tools: [query_crm] }
    tools:
      query_crm: { credential: ${credential} }
    credentials:
      crm: { source: local, name: crm }
`;
const FILES: Record<string, string> = {
  'bad.yaml': policyWith('crm2'),
  'typo.json': JSON.stringify({ broker: { token_tll: '5m' } }),
  'broken.yaml': 'tenants: [\n',
  'bad-for-audit.yaml': policyWith('nope'),
};
const file = (name: string) => join(dir, name);

const HELP_CASES: Array<[string[], RegExp]> = [
  [['serve', '--help'], /^Usage: bulkhead serve /],
  [['token', '--help'], /^Usage: bulkhead token /],
  [['revoke', '--help'], /^Usage: bulkhead revoke /],
  [['restore', '--help'], /^Usage: bulkhead restore /],
  [['revocations', '--help'], /^Usage: bulkhead revocations list /],
  [['quarantine', '--help'], /^Usage: bulkhead quarantine list /],
  [['audit', 'verify', '--help'], /^Usage: bulkhead audit verify /],
  [['audit', '--help'], /^Usage: bulkhead audit <verify\|export\|show\|correlate\|seal> /],
  [['audit', 'export', '--help'], /^Usage: bulkhead audit export --tenant T /],
  [['audit', 'show', '--help'], /^Usage: bulkhead audit show --tenant T /],
  [['audit', 'correlate', '--help'], /^Usage: bulkhead audit correlate --request-id R /],
  [['audit', 'seal', '--help'], /^Usage: bulkhead audit seal --tenant T --reason TEXT /],
  [['keys', 'rotate', '--help'], /^Usage: bulkhead keys rotate/],
  [['keys', '--help'], /^Usage: bulkhead keys rotate/],
  [['secret', 'set', '--help'], /^Usage: bulkhead secret set /],
  [['secret', '-h'], /^Usage: bulkhead secret set /],
  [['token', '-h'], /^Usage: bulkhead token /],
  [['--help'], /^Usage: bulkhead <verb>/],
  [['help'], /^Usage: bulkhead <verb>/],
];

const USAGE_CASES: Array<[string[], RegExp]> = [
  [['frobnicate'], /^bulkhead: unknown verb "frobnicate" \(see bulkhead --help\)$/],
  [['token', '--frob'], /^bulkhead token: Unknown option '--frob'/],
  [['serve', '--verbose'], /^bulkhead serve: Unknown option '--verbose'/],
  [['revoke', '--tenant'], /^bulkhead revoke: Option '--tenant <value>' argument missing/],
  [['token', 'acme-agent'], /^bulkhead token: Unexpected argument 'acme-agent'/],
  [['token', '--audience', 'demo-mcp'], /^bulkhead token: --client-id and --audience are required/],
  [['token', '--client-id', 'acme-agent'], /^bulkhead token: --client-id and --audience are required/],
  [['revoke'], /^bulkhead revoke: give exactly one of --tenant, --session, --principal, --jti$/],
  [['revoke', '--tenant', 'acme', '--session', 's'], /^bulkhead revoke: give exactly one of/],
  [['restore'], /^bulkhead restore: give exactly one of --tenant, --principal, --session$/],
  [['restore', '--session', 's1'], /^bulkhead restore: --reason is required with --session \(it is audited\)$/],
  [['revoke', '--tenant', 'acme', '--ttl', '1h'], /^bulkhead revoke: --ttl is for principals, sessions and tokens/],
  [['revocations', 'show'], /^bulkhead revocations: unknown action "show"/],
  [['revocations', 'list', '--kind', 'tenants'], /^bulkhead revocations list: --kind must be tenant, principal, session or jti, not "tenants"$/],
  [['quarantine', 'lift', '--session', 's1'], /^bulkhead quarantine lift: --reason is required \(it is audited\)$/],
  [['quarantine', 'lift', '--reason', 'ok'], /^bulkhead quarantine lift: --session is required$/],
  [['audit', 'fix'], /^bulkhead audit: unknown action "fix"/],
  [['audit', 'export', '--tenant', 'acme'], /^bulkhead audit export: --tenant and --out are required$/],
  [['audit', 'export', '--tenant', 'acme', '--out', 'x.json', '--from', 'yesterday'], /^bulkhead audit: --from must be an ISO 8601 time/],
  [['audit', 'verify', '--tenant', 'acme', '--expect-head', '12'], /^bulkhead audit verify: --expect-head must be SEQ:HASH/],
  [['audit', 'show'], /^bulkhead audit show: --tenant is required$/],
  [['audit', 'show', '--tenant', 'acme', '--limit', '0'], /^bulkhead audit show: --limit must be a whole number/],
  [['audit', 'correlate'], /^bulkhead audit correlate: --request-id is required$/],
  [['audit', 'seal', '--tenant', 'acme'], /^bulkhead audit seal: --tenant and --reason are required/],
  [['keys', 'spin'], /^bulkhead keys: unknown action "spin"/],
  [['secret', 'get'], /^bulkhead secret: unknown action "get"/],
  [['secret', 'set', '--name', 'crm'], /^bulkhead secret set: --tenant is required$/],
  [['secret', 'set', '--tenant', 'acme'], /^bulkhead secret set: --name is required$/],
  [['secret', 'set', '--tenant', 'acme', '--name', 'crm', 'value-on-the-command-line'], /^bulkhead secret set: Unexpected argument/],
  [['serve', '--port', 'http'], /^bulkhead serve: --port must be a port number, got "http"$/],
  [['serve', '--port', '70000'], /^bulkhead serve: --port must be a port number/],
];

const SECRET_NAME_CASES: Array<[string, RegExp]> = [
  ['a..b', /--name must not contain "\.\."/],
  ['../globex/crm', /--name must be 1-64 characters/],
  ['a/b', /--name must be 1-64 characters/],
  ['', /--name is required/],
];
const secretNameArgs = (name: string) => ['secret', 'set', '--tenant', 'acme', '--name', name, '--data-dir', join(dir, 'secret-names')];

const CONFIG_CASES: Array<[string, string[], RegExp]> = [
  ['serve --config with a dangling reference', ['serve', '--config', file('bad.yaml'), '--data-dir', join(dir, 'serve-bad'), '--port', '0'], new RegExp(`^${escape(file('bad.yaml'))}: tenants\\.acme\\.tools\\.query_crm\\.credential: unknown credential "crm2"$`)],
  ['serve --config with an unknown key', ['serve', '--config', file('typo.json'), '--data-dir', join(dir, 'serve-typo'), '--port', '0'], new RegExp(`^${escape(file('typo.json'))}: broker: unknown key "token_tll"$`)],
  ['serve --config with invalid YAML', ['serve', '--config', file('broken.yaml'), '--data-dir', join(dir, 'serve-broken'), '--port', '0'], new RegExp(`^${escape(file('broken.yaml'))}: not valid YAML: `)],
  ['serve --config with a file that does not exist', ['serve', '--config', file('missing.yaml'), '--port', '0'], new RegExp(`^${escape(file('missing.yaml'))}: cannot read policy file \\(ENOENT\\)$`)],
  ['audit verify --config refuses a bad policy the same way', ['audit', 'verify', '--config', file('bad-for-audit.yaml'), '--data-dir', join(dir, 'audit-bad')], new RegExp(`^${escape(file('bad-for-audit.yaml'))}: tenants\\.acme\\.tools\\.query_crm\\.credential: unknown credential "nope"$`)],
];

beforeAll(async () => {
  ensureBuilt();
  for (const [name, text] of Object.entries(FILES)) await writeFile(file(name), text);
  const all = [
    ...HELP_CASES.map(([args]) => runCli(args)),
    ...USAGE_CASES.map(([args]) => runCli(args)),
    ...SECRET_NAME_CASES.map(([name]) => runCli(secretNameArgs(name), { stdin: 'value\n' })),
    ...CONFIG_CASES.map(([, args]) => runCli(args)),
  ];
  await Promise.all(all);
}, 240_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Exit 2, nothing on stdout, exactly one line on stderr, matching `message`. */
function expectUsageError(result: CliResult, message: RegExp): void {
  expect(result.code).toBe(2);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(message);
}

describe('--help', () => {
  it.each(HELP_CASES)('bulkhead %j exits 0 and prints usage', async (args, usage) => {
    const result = await runCli(args);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(usage);
  });

  it('lists every verb in the top-level help', async () => {
    const { stdout } = await runCli(['--help']);
    for (const verb of ['serve', 'token', 'revoke', 'restore', 'audit', 'keys', 'secret']) expect(stdout).toMatch(new RegExp(`^  ${verb} `, 'm'));
    expect(stdout).toMatch(/Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error/);
  });

  it('prints usage and exits 2 when no verb is given', async () => {
    const result = await runCli([]);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(/^Usage: bulkhead <verb>/);
  });
});

describe('usage errors exit 2 with one line naming the problem', () => {
  it.each(USAGE_CASES)('bulkhead %j', async (args, message) => {
    expectUsageError(await runCli(args), message);
  });

  it.each(SECRET_NAME_CASES)('secret set refuses the name %p as a usage error, touching nothing', async (name, message) => {
    const result = await runCli(secretNameArgs(name), { stdin: 'value\n' });
    expectUsageError(result, new RegExp(`^bulkhead secret set: ${message.source}`));
    await expect(readFile(join(dir, 'secret-names', 'master.key'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('secret set refuses an empty standard input', async () => {
    const result = await runCli(['secret', 'set', '--tenant', 'acme', '--name', 'crm', '--data-dir', join(dir, 'empty-stdin')], { stdin: '' });
    expectUsageError(result, /^bulkhead secret set: no value on standard input$/);
  });

  it('token without a secret anywhere names where it looked', async () => {
    const result = await runCli(['token', '--client-id', 'acme-agent', '--audience', 'demo-mcp', '--data-dir', join(dir, 'nothing-here')]);
    expectUsageError(result, /^no client secret for "acme-agent": pass it in a file or set BULKHEAD_CLIENT_SECRET$/);
  });
});

describe('a bad policy file exits 2 naming the file and the field', () => {
  it.each(CONFIG_CASES)('%s', async (_name, args, message) => {
    expectUsageError(await runCli(args), message);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
