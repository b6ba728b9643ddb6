import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './usage-error';

export const DEFAULT_DATA_DIR = '.bulkhead';
export const DEFAULT_URL = 'http://127.0.0.1:8700';

/** Options every verb that reads policy or state accepts. */
export const stateOptions = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** Options every verb that talks to a running broker accepts. */
export const clientOptions = {
  ...stateOptions,
  url: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

type ParsedValues<O> = { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string };

/** parseArgs, strict, with errors as UsageError so they exit 2 with one line. */
export function parseVerb<O extends NonNullable<ParseArgsConfig['options']>>(verb: string, argv: string[], options: O): { values: ParsedValues<O> } {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }) as { values: ParsedValues<O> };
  } catch (err) {
    throw new UsageError(`bulkhead ${verb}: ${(err as Error).message.split('\n')[0]} (see bulkhead ${verb} --help)`);
  }
}
