import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { actionsOf, VERBS } from '../../../src/cli/main';
import { closest } from '../../../src/cli/suggest';
import { ensureBuilt, freePort, MAIN, ROOT, runCli, startServe, type CliOptions, type CliResult, type RunningServe } from './cli-harness';

/**
 * What every verb shares, proved by walking the verb registry rather than a list in this file, so a verb
 * added later is held to it too: --json prints exactly one JSON document (a result, a help text or an
 * error), --help ends with the exit codes, `help VERB` is `VERB --help`; unknown verbs and flags are
 * answered with the closest known one; the broker is found at --url, else $BULKHEAD_ADDR, else the
 * default; exit codes are 0 ok, 1 runtime failure, 2 usage; and bash completion works in a real bash.
 */

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'bulkhead-cli-conventions-'));
const NOBODY = 'http://127.0.0.1:9'; // the discard port: nothing answers there
const EXIT_LINE = 'Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.';
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** Every verb, and every action of a verb that has them: the commands a user can type. */
const COMMANDS: string[][] = Object.keys(VERBS).flatMap((verb) => (actionsOf(verb).length ? actionsOf(verb).map((action) => [verb, action]) : [[verb]]));

let serve: RunningServe;
const dataDir = join(dir, 'data');
// Every run in a scratch cwd, so no verb reads or writes a .bulkhead of the checkout; nothing answers at the default.
const inScratch = (env: Record<string, string> = {}): CliOptions => ({ cwd: dir, env: { BULKHEAD_ADDR: NOBODY, ...env } });
const cli = (args: string[], env?: Record<string, string>) => runCli(args, inScratch(env));

function oneJsonDocument(result: CliResult): any {
  let parsed: unknown;
  expect(() => (parsed = JSON.parse(result.stdout))).not.toThrow();
  return parsed;
}

beforeAll(async () => {
  ensureBuilt();
  const port = await freePort();
  serve = await startServe(['--data-dir', dataDir, '--port', String(port)], /"url":"(http:\/\/127\.0\.0\.1:\d+)"/, { BULKHEAD_LOG_LEVEL: 'info' });
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('--json on every verb', () => {
  it.each(COMMANDS)('bulkhead %s %s --json, with nothing else given, prints one JSON document', async (...command) => {
    // serve would start listening: give it a bad port, so every verb ends, each its own way.
    const args = command[0] === 'serve' ? ['serve', '--port', 'http', '--json'] : [...command, '--json'];
    const result = await cli(args);
    const document = oneJsonDocument(result);
    expect(result.stderr).not.toMatch(/Unknown option '--json'/);
    if (result.code !== 0) expect(document.error).toEqual({ message: result.stderr.trimEnd(), exit_code: result.code });
    expect([0, 1, 2]).toContain(result.code);
  });

  it.each(COMMANDS)('bulkhead %s %s --help --json is the help text as JSON', async (...command) => {
    const result = await cli([...command, '--help', '--json']);
    expect(result.code).toBe(0);
    expect(oneJsonDocument(result)).toEqual({ verb: command[0], help: expect.stringMatching(/^Usage: bulkhead /) });
  });

  it('answers real work with the result as JSON, from a running broker', async () => {
    const at = { BULKHEAD_ADDR: serve.url };
    const token = oneJsonDocument(await cli(['token', '--client-id', 'acme-agent', '--audience', 'demo-mcp', '--data-dir', dataDir, '--json'], at));
    expect(token).toMatchObject({ token_type: 'Bearer', access_token: expect.any(String) });
    const revoked = await cli(['revoke', '--tenant', 'globex', '--data-dir', dataDir, '--json'], at);
    expect([revoked.code, oneJsonDocument(revoked).revoked]).toEqual([0, { tenant: 'globex' }]);
    expect(oneJsonDocument(await cli(['restore', '--tenant', 'globex', '--data-dir', dataDir, '--json'], at))).toMatchObject({ tenant: 'globex' });
    expect(oneJsonDocument(await cli(['keys', 'rotate', '--data-dir', dataDir, '--json'], at))).toMatchObject({ rotated: true });
    expect(oneJsonDocument(await cli(['approvals', 'list', '--tenant', 'acme', '--data-dir', dataDir, '--json'], at))).toMatchObject({ tenant: 'acme', approvals: [] });
    expect(oneJsonDocument(await cli(['tenant', 'status', 'acme', '--data-dir', dataDir, '--json'], at))).toMatchObject({ tenant: 'acme', revoked: false });
    expect(oneJsonDocument(await cli(['secret', 'list', '--tenant', 'acme', '--data-dir', dataDir, '--json']))).toMatchObject({ tenant: 'acme', names: expect.arrayContaining(['crm']) });
    const verified = await cli(['audit', 'verify', '--tenant', 'acme', '--data-dir', dataDir, '--json']);
    // Offline, beside a running broker: the verdict is the point here, not what it says.
    const verdict = oneJsonDocument(verified);
    expect(verdict.tenants.map((t: { tenant: string }) => t.tenant)).toEqual(['acme']);
    expect(verified.code).toBe(verdict.ok ? 0 : 1);
  });

  it('works before the verb too, and keeps the text output without it', async () => {
    expect(oneJsonDocument(await cli(['--json', 'secret', 'list', '--tenant', 'acme', '--data-dir', dataDir]))).toMatchObject({ names: expect.arrayContaining(['crm']) });
    const text = await cli(['secret', 'list', '--tenant', 'acme', '--data-dir', dataDir]);
    expect(text.stdout.split('\n')).toContain('crm');
    expect(() => JSON.parse(text.stdout)).toThrow();
  });

  it('describes the CLI itself as JSON', async () => {
    const top = oneJsonDocument(await cli(['--help', '--json']));
    expect(top.verbs.map((v: { name: string }) => v.name)).toEqual(Object.keys(VERBS));
    expect(top.verbs.find((v: { name: string }) => v.name === 'audit').actions).toEqual(['verify', 'export', 'show', 'correlate', 'seal']);
    expect(Object.keys(top.exit_codes)).toEqual(['0', '1', '2']);
  });
});

describe('--version and help VERB', () => {
  it('prints the package version, as text and as JSON', async () => {
    for (const flag of ['--version', '-V', 'version']) {
      const result = await cli([flag]);
      expect([result.code, result.stdout]).toEqual([0, `bulkhead ${pkg.version} (node ${process.version})\n`]);
    }
    expect(oneJsonDocument(await cli(['--version', '--json']))).toEqual({ name: 'bulkhead', version: pkg.version, node: process.version });
  });

  it.each(COMMANDS)('bulkhead help %s %s prints what --help prints, ending with the exit codes', async (...command) => {
    const [viaHelp, viaFlag] = await Promise.all([cli(['help', ...command]), cli([...command, '--help'])]);
    expect(viaHelp).toEqual(viaFlag);
    expect(viaFlag.code).toBe(0);
    expect(viaFlag.stdout.trimEnd().endsWith(EXIT_LINE)).toBe(true);
    expect(viaFlag.stdout).toMatch(/\$BULKHEAD_ADDR/);
  });

  it('documents the exit codes in the top-level help and in docs/cli.md', async () => {
    const top = await cli(['--help']);
    expect(top.stdout).toMatch(/^ {2}0 {2}ok$/m);
    expect(top.stdout).toMatch(/^ {2}1 {2}runtime failure/m);
    expect(top.stdout).toMatch(/^ {2}2 {2}usage or configuration error/m);
    const docs = readFileSync(join(ROOT, 'docs/cli.md'), 'utf8');
    for (const verb of Object.keys(VERBS)) expect(docs).toContain(`## bulkhead ${verb}\n`);
    expect(docs).toContain(EXIT_LINE);
    expect(docs).toContain('## bulkhead completion');
  });
});

describe('did you mean', () => {
  it.each([
    [['tokne'], /^bulkhead: unknown verb "tokne" \(did you mean "token"\?\)/],
    [['revok', '--tenant', 'acme'], /\(did you mean "revoke"\?\)/],
    [['aprovals', 'list'], /\(did you mean "approvals"\?\)/],
    [['help', 'polcy'], /unknown verb "polcy" \(did you mean "policy"\?\)/],
    [['revoke', '--tenat', 'acme'], /^bulkhead revoke: Unknown option '--tenat' \(did you mean --tenant\?\)/],
    [['audit', 'verify', '--expect-haed', 'x'], /Unknown option '--expect-haed' \(did you mean --expect-head\?\)/],
    [['token', '--audiance', 'demo-mcp'], /Unknown option '--audiance' \(did you mean --audience\?\)/],
    [['policy', 'check', 'x.yaml', '--jsn'], /Unknown option '--jsn' \(did you mean --json\?\)/],
    [['completion', 'bsh'], /no completion for "bsh" \(did you mean "bash"\?\)/],
  ])('bulkhead %j exits 2 and names the closest', async (args, message) => {
    const result = await cli(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(message);
  });

  it('suggests nothing for a word that is no near miss', async () => {
    expect((await cli(['frobnicate'])).stderr).toBe('bulkhead: unknown verb "frobnicate" (see bulkhead --help)\n');
    expect((await cli(['revoke', '--zzzzzz'])).stderr).not.toMatch(/did you mean/);
    expect(closest('x', ['token', 'revoke'])).toBeUndefined();
    expect(closest('tokne', ['token', 'revoke'])).toBe('token');
    expect(closest('restroe', ['revoke', 'restore'])).toBe('restore');
  });
});

describe('BULKHEAD_ADDR, as Vault reads VAULT_ADDR: flag, then environment, then default', () => {
  const rotate = (...extra: string[]) => ['keys', 'rotate', '--data-dir', dataDir, ...extra];

  it('finds the broker from $BULKHEAD_ADDR when no --url is given', async () => {
    expect((await cli(rotate(), { BULKHEAD_ADDR: serve.url })).code).toBe(0);
  });

  it('prefers --url to $BULKHEAD_ADDR', async () => {
    expect((await cli(rotate('--url', serve.url), { BULKHEAD_ADDR: NOBODY })).code).toBe(0);
    const wrongFlag = await cli(rotate('--url', NOBODY), { BULKHEAD_ADDR: serve.url });
    expect([wrongFlag.code, wrongFlag.stderr]).toEqual([1, expect.stringContaining(`cannot reach the broker at ${NOBODY}`)]);
  });

  it('prefers $BULKHEAD_ADDR to the older $BULKHEAD_URL, which still works alone', async () => {
    const both = await cli(rotate(), { BULKHEAD_ADDR: NOBODY, BULKHEAD_URL: serve.url });
    expect(both.stderr).toContain(`cannot reach the broker at ${NOBODY}`);
    expect((await runCli(rotate(), { cwd: dir, env: { BULKHEAD_URL: serve.url } })).code).toBe(0);
  });

  it('falls back to http://127.0.0.1:8700 with neither', async () => {
    const result = await runCli(rotate(), { cwd: dir });
    expect(result.stderr).toMatch(/cannot reach the broker at http:\/\/127\.0\.0\.1:8700|: 401 /);
  });
});

describe('exit codes', () => {
  it('0 for success, 1 for a runtime failure, 2 for a usage error — with --json too', async () => {
    expect((await cli(['secret', 'list', '--tenant', 'acme', '--data-dir', dataDir])).code).toBe(0);
    const unreachable = await cli(['keys', 'rotate', '--data-dir', dataDir, '--json']);
    expect([unreachable.code, oneJsonDocument(unreachable).error.exit_code]).toEqual([1, 1]);
    const usage = await cli(['revoke', '--json']);
    expect([usage.code, oneJsonDocument(usage).error.exit_code]).toEqual([2, 2]);
    expect((await cli([])).code).toBe(2);
  });
});

describe('shell completion', () => {
  let bin: string;
  beforeAll(() => {
    bin = join(dir, 'bin');
    require('node:fs').mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'bulkhead'), `#!/bin/sh\nexec "${process.execPath}" "${MAIN}" "$@"\n`);
    chmodSync(join(bin, 'bulkhead'), 0o755);
  });

  /** What bash offers at TAB after `line`, through the script `bulkhead completion bash` prints. */
  async function tab(line: string): Promise<string[]> {
    const words = line.split(' ');
    const script = `source <(bulkhead completion bash)
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_bulkhead; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const { stdout } = await run('bash', ['-c', script], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, BULKHEAD_ADDR: NOBODY } });
    return stdout.split('\n').filter(Boolean);
  }

  it('completes verbs, actions and flags from the registry and each verb\'s --help', async () => {
    expect(await tab('bulkhead rev')).toEqual(['revoke', 'revocations']);
    expect(await tab('bulkhead re')).toEqual(expect.arrayContaining(['revoke', 'restore']));
    expect(await tab('bulkhead audit ')).toEqual(expect.arrayContaining(['verify', 'export', 'show', 'correlate', 'seal']));
    expect(await tab('bulkhead revoke --te')).toEqual(['--tenant']);
    expect(await tab('bulkhead audit verify --exp')).toEqual(['--expect-head']);
    expect(await tab('bulkhead keys rotate --j')).toEqual(['--json']);
    expect(await tab('bulkhead completion ')).toEqual(['bash', 'zsh']);
  }, 60_000);

  it('leaves a flag\'s value to the shell\'s path completion', async () => {
    expect(await tab('bulkhead serve --config ')).toEqual([]);
  }, 30_000);

  it('prints a zsh script through bashcompinit, and refuses other shells', async () => {
    const zsh = await cli(['completion', 'zsh']);
    expect(zsh.stdout).toMatch(/^#compdef bulkhead\n/);
    expect(zsh.stdout).toContain('bashcompinit');
    expect((await cli(['completion', 'fish'])).code).toBe(2);
  });
});
