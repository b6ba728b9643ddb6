#!/usr/bin/env node
import { completionScript, complete, COMPLETION_HELP } from './completion';
import { asJsonDocument, collectStdout, writeJson } from './output';
import { didYouMean } from './suggest';
import { UsageError } from './usage-error';
import { packageVersion } from '../version';

type Verb = (argv: string[]) => Promise<number>;

export interface VerbEntry {
  load: () => Verb;
  summary: string;
  /** Output is a stream (serve: JSON log lines), so --json is not collected into one document. */
  streams?: boolean;
}

/**
 * The verbs. Each module is loaded only when it runs: `serve` pulls in the upstream SDKs, which a quick
 * `bulkhead token` or `bulkhead revoke` should not pay for. A summary that starts "verb a|b|c:" names
 * the verb's actions (for completion and "did you mean"). Everything in this file — --json, --version,
 * `help VERB`, completion, suggestions, exit codes — applies to every entry without code of its own.
 */
export const VERBS: Record<string, VerbEntry> = {
  serve: { load: () => (require('./serve') as typeof import('./serve')).serve, summary: 'run the broker (demo policy without --config)', streams: true },
  token: { load: () => (require('./token') as typeof import('./token')).token, summary: 'get an access token for a principal' },
  revoke: { load: () => (require('./operator') as typeof import('./operator')).revoke, summary: 'kill switch: revoke a tenant, session, principal or token' },
  restore: { load: () => (require('./operator') as typeof import('./operator')).restore, summary: 'undo a revoke: a tenant (new tokens only), a principal or a session' },
  revocations: { load: () => (require('./revocations') as typeof import('./revocations')).revocations, summary: 'revocations list: what is revoked now, with reasons and expiries' },
  quarantine: { load: () => (require('./quarantine') as typeof import('./quarantine')).quarantine, summary: 'quarantine list|lift: review and release quarantined sessions' },
  audit: { load: () => (require('./audit') as typeof import('./audit')).audit, summary: 'audit verify|export|show|correlate|seal: check, export, search and seal the audit' },
  keys: { load: () => (require('./operator') as typeof import('./operator')).keys, summary: 'keys rotate: move the signing keys one step' },
  approvals: { load: () => (require('./approvals') as typeof import('./approvals')).approvals, summary: 'approvals list|show|approve|deny: calls waiting for a human' },
  secret: { load: () => (require('./secret') as typeof import('./secret')).secret, summary: 'secret set|list|delete|shred: the embedded secret store' },
  tenant: { load: () => (require('./tenant') as typeof import('./tenant')).tenant, summary: 'tenant status|export|delete|shred: budget and quota use; DSAR export; delete a tenant; crypto-shred its keys' },
  selftest: { load: () => (require('./selftest') as typeof import('./selftest')).selftest, summary: 'selftest: containment proof against a live deployment, with canary tenants' },
  state: { load: () => (require('./state') as typeof import('./state')).state, summary: 'state init: create the PostgreSQL schema for scale-out' },
  policy: { load: () => (require('./policy') as typeof import('./policy')).policy, summary: 'policy check|diff|reload: validate, compare and live-reload policy files' },
  certs: { load: () => (require('./certs') as typeof import('./certs')).certs, summary: 'certs issue|renew: mTLS client certificates for MCP servers and operators' },
};

/** The verbs that are the CLI's own, beside VERBS. */
const BUILTINS = ['help', 'completion', 'version'];

/** A verb's actions, from its summary ("audit verify|export|show|correlate: …"). */
export function actionsOf(name: string): string[] {
  const match = new RegExp(`^${name} ([a-z-]+(?:\\|[a-z-]+)*):`).exec(VERBS[name]?.summary ?? '');
  return match ? match[1]!.split('|') : [];
}

export const EXIT_CODES = { 0: 'ok', 1: 'runtime failure (the broker refused or could not be reached, a check found a problem)', 2: 'usage or configuration error (one line naming the flag, file or field)' } as const;
const EXIT_LINE = `Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.`;

/** Appended to every verb's --help, so each says what all of them share. */
export const COMMON_HELP = `
Every verb: --json prints one JSON document on stdout (errors too: {"error": {message, exit_code}});
a verb that calls a running broker finds it at --url, else $BULKHEAD_ADDR, else http://127.0.0.1:8700.
${EXIT_LINE}`;

export const HELP = `Usage: bulkhead <verb> [options]     (bulkhead help <verb>, or bulkhead <verb> --help)

${Object.entries(VERBS)
  .map(([name, v]) => `  ${name.padEnd(11)}${v.summary}`)
  .join('\n')}
  ${'help'.padEnd(11)}help VERB [ACTION]: the same as VERB [ACTION] --help
  ${'completion'.padEnd(11)}completion bash|zsh: shell completion (see bulkhead completion --help)

Options: --version (-V), --help (-h); on every verb --json (one JSON document on stdout).
Verbs that read policy or state take --config FILE and --data-dir DIR.
Verbs that call a running broker take --url URL, else $BULKHEAD_ADDR (like Vault's VAULT_ADDR), else
http://127.0.0.1:8700.
${EXIT_LINE}
  0  ${EXIT_CODES[0]}
  1  ${EXIT_CODES[1]}
  2  ${EXIT_CODES[2]}`;

/** argv with `flag` among its options (before a `--`), once. */
function withFlag(argv: string[], flag: string | null): string[] {
  if (flag === null || flagsOf(argv).includes(flag)) return argv;
  const end = argv.indexOf('--');
  return end < 0 ? [...argv, flag] : [...argv.slice(0, end), flag, ...argv.slice(end)];
}

/** Everything before a `--` that ends the options. */
function flagsOf(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return end < 0 ? argv : argv.slice(0, end);
}

export async function main(argv: string[]): Promise<number> {
  const json = flagsOf(argv).includes('--json');
  // The verb is the first word that is not --json (`bulkhead --json revoke …` works too).
  const at = argv.findIndex((arg) => arg !== '--json');
  const first = at < 0 ? undefined : argv[at];
  let rest = at < 0 ? [] : withFlag(argv.slice(at + 1), json ? '--json' : null);

  if (first === '--version' || first === '-V' || first === 'version') {
    if (json) writeJson({ name: 'bulkhead', version: packageVersion(), node: process.version });
    else process.stdout.write(`bulkhead ${packageVersion()} (node ${process.version})\n`);
    return 0;
  }
  if (first === undefined || first === '--help' || first === '-h' || (first === 'help' && rest.length === 0)) {
    if (json) writeJson({ usage: 'bulkhead <verb> [options]', verbs: Object.entries(VERBS).map(([name, v]) => ({ name, summary: v.summary, actions: actionsOf(name) })), exit_codes: EXIT_CODES, version: packageVersion() });
    else process.stdout.write(HELP + '\n');
    return first === undefined ? 2 : 0;
  }
  if (first === 'help') return main([...rest, '--help', ...(json ? ['--json'] : [])]);
  if (first === '__complete') {
    process.stdout.write((await complete(rest)).join('\n') + '\n');
    return 0;
  }
  if (first === 'completion') return runBuiltin('completion', json, () => completion(rest));

  const entry = VERBS[first];
  if (!entry) return fail(first, new UsageError(`bulkhead: unknown verb "${first}"${didYouMean(first, [...Object.keys(VERBS), ...BUILTINS])} (see bulkhead --help)`), json);
  const actions = actionsOf(first);
  if (actions.length > 0) {
    // The action comes first, whatever else was typed: `audit --json verify` is `audit verify --json`.
    const [action] = rest.filter((arg) => arg !== '--json');
    if (action !== undefined && !action.startsWith('-') && !actions.includes(action)) {
      return fail(first, new UsageError(`bulkhead ${first}: unknown action "${action}"${didYouMean(action, actions)} (see bulkhead ${first} --help)`), json);
    }
    // No action: the verb prints its help (a verb's own flags are not read before its action).
    if (json) rest = action === undefined ? [] : withFlag(rest.filter((arg) => arg !== '--json'), '--json');
  }
  // A verb with actions and none given answers with its help, as if asked.
  const helpAsked = flagsOf(rest).some((arg) => arg === '--help' || arg === '-h') || (actions.length > 0 && rest.length === 0);
  // A help text is one document even for a streaming verb.
  const collecting = json && (helpAsked || !entry.streams) ? collectStdout() : null;
  let code: number;
  try {
    code = await entry.load()(rest);
  } catch (err) {
    collecting?.finish();
    return fail(first, err, json);
  }
  const written = collecting?.finish();
  if (collecting) writeJson(asJsonDocument(written!, { verb: first, help: helpAsked }));
  else if (helpAsked && code === 0) process.stdout.write(COMMON_HELP + '\n');
  return code;
}

async function runBuiltin(name: string, json: boolean, run: () => number): Promise<number> {
  const collecting = json ? collectStdout() : null;
  try {
    const code = run();
    if (collecting) writeJson(asJsonDocument(collecting.finish(), { verb: name, help: false }));
    return code;
  } catch (err) {
    collecting?.finish();
    return fail(name, err, json);
  }
}

function completion(argv: string[]): number {
  const [shell, ...extra] = argv;
  if (shell === undefined || shell === '--help' || shell === '-h' || extra.length > 0) {
    if (shell === '--help' || shell === '-h') {
      process.stdout.write(COMPLETION_HELP + '\n');
      return 0;
    }
    throw new UsageError('bulkhead completion: give one shell: bash or zsh (see bulkhead completion --help)');
  }
  const script = completionScript(shell);
  if (script === null) throw new UsageError(`bulkhead completion: no completion for "${shell}"${didYouMean(shell, ['bash', 'zsh'])}; bash and zsh are supported`);
  process.stdout.write(script);
  return 0;
}

/** Exit 2 for a usage or configuration error, 1 for anything else; one line on stderr either way. */
function fail(verb: string, err: unknown, json: boolean): number {
  const usage = err instanceof UsageError;
  const message = usage ? (err as Error).message : `bulkhead ${verb}: ${(err as Error).message}`;
  const code = usage ? 2 : 1;
  process.stderr.write(`${message}\n`);
  if (json) writeJson({ error: { message, exit_code: code } });
  return code;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`bulkhead: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
