import { parseArgs, type ParseArgsConfig } from 'node:util';
import { didYouMean } from './suggest';
import { UsageError } from './usage-error';

export const DEFAULT_DATA_DIR = '.bulkhead';
export const DEFAULT_URL = 'http://127.0.0.1:8700';

/**
 * Where the broker is, as Vault finds VAULT_ADDR: the --url flag, else $BULKHEAD_ADDR, else
 * $BULKHEAD_URL (the older name, still honoured), else http://127.0.0.1:8700.
 */
export function brokerUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag || env.BULKHEAD_ADDR || env.BULKHEAD_URL || DEFAULT_URL;
}

/** The line every verb that calls a running broker puts in its --help. */
export const ADDRESS_HELP = `  --url URL                 broker URL, or unix:/path of its socket (default $BULKHEAD_ADDR, else ${DEFAULT_URL})`;

/** Options every verb takes, whether or not it declares them: the output mode and its help. */
export const commonOptions = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** Options every verb that reads policy or state accepts. */
export const stateOptions = {
  ...commonOptions,
  config: { type: 'string' },
  'data-dir': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Options every verb that talks to a running broker accepts. */
export const clientOptions = {
  ...stateOptions,
  url: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

type ParsedValues<O> = { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string };

/**
 * parseArgs, strict, with errors as UsageError so they exit 2 with one line. Every verb gets --json and
 * --help this way, and an unknown flag is answered with the closest one the verb has.
 */
export function parseVerb<O extends NonNullable<ParseArgsConfig['options']>>(
  verb: string,
  argv: string[],
  options: O,
  settings: { positionals?: boolean } = {},
): { values: ParsedValues<O & typeof commonOptions>; positionals: string[] } {
  const all = { ...commonOptions, ...options };
  try {
    return parseArgs({ args: argv, options: all, strict: true, allowPositionals: settings.positionals === true }) as { values: ParsedValues<O & typeof commonOptions>; positionals: string[] };
  } catch (err) {
    throw new UsageError(`bulkhead ${verb}: ${describeParseError(err as Error & { code?: string }, Object.keys(all))} (see bulkhead ${verb} --help)`);
  }
}

/** node:util's first line, and for an unknown flag the closest known one. */
export function describeParseError(err: Error & { code?: string }, known: string[]): string {
  const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec(err.message);
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
    const flag = unknown[1]!.replace(/^-+/, '').split('=')[0]!;
    return `Unknown option '${unknown[1]}'${didYouMean(flag, known, (name) => `--${name}`)}`;
  }
  return err.message.split('\n')[0]!;
}
