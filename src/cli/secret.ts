import { createLocalSecretStore } from '../../adapters/local';
import { loadOrCreateMasterKey } from '../crypto/master-key';
import { idSchema } from '../policy/schema';
import { loadConfig } from './load-config';
import { parseVerb, stateOptions } from './options';
import { UsageError } from './usage-error';

export const SECRET_HELP = `Usage: bulkhead secret set --tenant T --name N [--data-dir DIR] < value

Stores a secret in the embedded local store, encrypted under tenant T's data key (AES-256-GCM).
The value is read from standard input (one trailing newline is dropped), never from the command line,
so it stays out of shell history and process listings. Policy refers to it as { source: local, name: N }.`;

export async function secret(argv: string[], stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(SECRET_HELP + '\n');
    return 0;
  }
  if (action !== 'set') throw new UsageError(`bulkhead secret: unknown action "${action}" (see bulkhead secret --help)`);
  const { values } = parseVerb('secret set', rest, { ...stateOptions, tenant: { type: 'string' }, name: { type: 'string' } });
  if (values.help) {
    process.stdout.write(SECRET_HELP + '\n');
    return 0;
  }
  for (const field of ['tenant', 'name'] as const) {
    const value = values[field];
    if (!value) throw new UsageError(`bulkhead secret set: --${field} is required`);
    if (!idSchema.safeParse(value).success) throw new UsageError(`bulkhead secret set: --${field} ${idSchema.safeParse(value).error?.issues[0]?.message}`);
    // The store also refuses ".." (it would read as a path); say so here, as a usage error, not a failure.
    if (value.includes('..')) throw new UsageError(`bulkhead secret set: --${field} must not contain ".."`);
  }
  const { dataDir } = loadConfig(values);
  const value = (await readAll(stdin)).replace(/\r?\n$/, '');
  if (!value) throw new UsageError('bulkhead secret set: no value on standard input');
  const store = createLocalSecretStore({ dataDir, masterKey: await loadOrCreateMasterKey(dataDir) });
  await store.set(values.tenant!, values.name!, value);
  process.stdout.write(`stored secret "${values.name}" for tenant "${values.tenant}" in ${dataDir}\n`);
  return 0;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString('utf8');
}
