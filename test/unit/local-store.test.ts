import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSecretStore, createLocalSource, type LocalSecretStore } from '../../adapters/local';
import type { CredentialRequest } from '../../src/credentials/credential-source';

let dataDir: string;
let store: LocalSecretStore;
const masterKey = randomBytes(32);
const secretsDir = () => join(dataDir, 'secrets');

const ACME_VALUE = 'acme-crm-token-7f3a9c1e5b';
const GLOBEX_VALUE = 'globex-crm-token-2d8e4f6a0c';

function request(tenant: string, name = 'crm', specName = name): CredentialRequest {
  return { tenant, name, spec: { source: 'local', name: specName }, session: 's1', callId: 'c1', signal: new AbortController().signal };
}

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'bulkhead-local-'));
  store = createLocalSecretStore({ dataDir, masterKey });
  await store.set('acme', 'crm', ACME_VALUE);
  await store.set('globex', 'crm', GLOBEX_VALUE);
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

test('a secret round-trips, and each tenant gets its own value under the same name', async () => {
  expect(await store.get('acme', 'crm')).toBe(ACME_VALUE);
  expect(await store.get('globex', 'crm')).toBe(GLOBEX_VALUE);
  await store.set('acme', 'mail', 'ünïcode ✓ value');
  expect(await store.get('acme', 'mail')).toBe('ünïcode ✓ value');
  expect(await store.list('acme')).toEqual(['crm', 'mail']);
  expect(await store.list('globex')).toEqual(['crm']);
  expect(await store.delete('acme', 'mail')).toBe(true);
  expect(await store.delete('acme', 'mail')).toBe(false);
  expect(await store.get('acme', 'mail')).toBeUndefined();
  // A second store on the same directory (another process, the CLI) reads the same values.
  expect(await createLocalSecretStore({ dataDir, masterKey }).get('acme', 'crm')).toBe(ACME_VALUE);
});

test('a ciphertext copied from tenant A\'s file into tenant B\'s file does not open', async () => {
  const acmeFile = join(secretsDir(), 'acme.json');
  const globexFile = join(secretsDir(), 'globex.json');
  const acme = JSON.parse(await readFile(acmeFile, 'utf8')) as Record<string, string>;
  const globex = JSON.parse(await readFile(globexFile, 'utf8')) as Record<string, string>;
  await writeFile(globexFile, JSON.stringify({ ...globex, crm: acme.crm, stolen: acme.crm }));
  await expect(store.get('globex', 'crm')).rejects.toThrow();
  await expect(store.get('globex', 'stolen')).rejects.toThrow();
  // Even A's own blob moved to another name of A's does not open: the name is bound too.
  await writeFile(acmeFile, JSON.stringify({ ...acme, other: acme.crm }));
  await expect(store.get('acme', 'other')).rejects.toThrow();
  expect(await store.get('acme', 'crm')).toBe(ACME_VALUE);
});

test('a data key copied from tenant A to tenant B does not open under B', async () => {
  await copyFile(join(secretsDir(), 'acme.key'), join(secretsDir(), 'globex.key'));
  await expect(store.get('globex', 'crm')).rejects.toThrow();
});

test('shredding A\'s key makes A\'s secrets unreadable, even from a backup, and leaves B intact', async () => {
  const backup = join(dataDir, 'acme.json.backup');
  await copyFile(join(secretsDir(), 'acme.json'), backup);
  await store.shredTenant('acme');

  await expect(stat(join(secretsDir(), 'acme.key'))).rejects.toMatchObject({ code: 'ENOENT' });
  expect(await store.get('acme', 'crm')).toBeUndefined();
  await copyFile(backup, join(secretsDir(), 'acme.json'));
  await expect(store.get('acme', 'crm')).rejects.toThrow(/no data key/);
  // A new key for A (a fresh secret after the shred) does not resurrect the old ciphertexts either.
  await store.set('acme', 'fresh', 'new-value-after-shred');
  await copyFile(backup, join(dataDir, 'restored.json'));
  const restored = JSON.parse(await readFile(join(dataDir, 'restored.json'), 'utf8')) as Record<string, string>;
  const current = JSON.parse(await readFile(join(secretsDir(), 'acme.json'), 'utf8')) as Record<string, string>;
  await writeFile(join(secretsDir(), 'acme.json'), JSON.stringify({ ...current, crm: restored.crm }));
  await expect(store.get('acme', 'crm')).rejects.toThrow();
  expect(await store.get('acme', 'fresh')).toBe('new-value-after-shred');

  expect(await store.get('globex', 'crm')).toBe(GLOBEX_VALUE);
});

test('no secret value, nor any data key, appears in plaintext in any file under the data dir', async () => {
  const files = await readdir(dataDir, { recursive: true, withFileTypes: true });
  const contents = await Promise.all(files.filter((f) => f.isFile()).map((f) => readFile(join(f.parentPath ?? f.path, f.name))));
  expect(contents.length).toBeGreaterThanOrEqual(4);
  for (const bytes of contents) {
    for (const value of [ACME_VALUE, GLOBEX_VALUE]) {
      expect(bytes.includes(Buffer.from(value))).toBe(false);
      expect(bytes.toString('latin1')).not.toContain(Buffer.from(value).toString('base64'));
      expect(bytes.toString('latin1')).not.toContain(Buffer.from(value).toString('base64url'));
    }
    expect(bytes.includes(masterKey)).toBe(false);
  }
});

test('secret files are 0600, the secrets directory 0700, and no temp files are left behind', async () => {
  expect((await stat(secretsDir())).mode & 0o777).toBe(0o700);
  const names = await readdir(secretsDir());
  expect(names.sort()).toEqual(['acme.json', 'acme.key', 'globex.json', 'globex.key']);
  for (const name of names) expect((await stat(join(secretsDir(), name))).mode & 0o777).toBe(0o600);
});

test('concurrent sets for one tenant keep every secret and one data key', async () => {
  await Promise.all(Array.from({ length: 20 }, (_, i) => store.set('initech', `s${i}`, `value-${i}`)));
  expect(await store.list('initech')).toHaveLength(20);
  for (let i = 0; i < 20; i += 1) expect(await store.get('initech', `s${i}`)).toBe(`value-${i}`);
});

test('ids that could name another path are refused', async () => {
  for (const bad of ['../acme', 'a/b', 'a..b', '', '.key']) {
    await expect(store.get(bad, 'crm')).rejects.toThrow(/invalid tenant/);
    await expect(store.set('acme', bad, 'x')).rejects.toThrow(/invalid secret name/);
  }
});

describe('local credential source', () => {
  test('resolves the calling tenant\'s value with a reference, never the value, in ref', async () => {
    const source = createLocalSource(store);
    expect(source.sources).toEqual(['local']);
    expect(await source.resolve(request('acme'))).toEqual({ source: 'local', ref: 'local:acme/crm', value: ACME_VALUE });
    expect(await source.resolve(request('globex'))).toEqual({ source: 'local', ref: 'local:globex/crm', value: GLOBEX_VALUE });
  });

  test('a secret only tenant A has is unavailable to tenant B, with no value in the error', async () => {
    await store.set('acme', 'billing', 'acme-billing-secret-91b2');
    const source = createLocalSource(store);
    const err = await source.resolve(request('globex', 'billing')).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'upstream_unavailable', status: 503, message: 'credential "billing" is not available' });
    expect(JSON.stringify(err)).not.toContain('acme-billing-secret');
  });

  test('a shredded tenant\'s credential is unavailable, with the same public answer as a missing one', async () => {
    const backup = await readFile(join(secretsDir(), 'acme.json'));
    await store.shredTenant('acme');
    await writeFile(join(secretsDir(), 'acme.json'), backup, { mode: 0o600 });
    const source = createLocalSource(store);
    await expect(source.resolve(request('acme'))).rejects.toMatchObject({ reason: 'upstream_unavailable', message: 'credential "crm" is not available' });
    expect(await source.resolve(request('globex'))).toMatchObject({ value: GLOBEX_VALUE });
  });

  test('the policy name is used in messages, the spec name to look up the secret', async () => {
    const source = createLocalSource(store);
    expect(await source.resolve(request('acme', 'crm_readonly', 'crm'))).toMatchObject({ ref: 'local:acme/crm', value: ACME_VALUE });
    await expect(source.resolve(request('acme', 'crm_readonly', 'nothing'))).rejects.toMatchObject({ message: 'credential "crm_readonly" is not available' });
  });

  test('an aborted call gets no value', async () => {
    const controller = new AbortController();
    controller.abort();
    const source = createLocalSource(store);
    await expect(source.resolve({ ...request('acme'), signal: controller.signal })).rejects.toMatchObject({ reason: 'upstream_unavailable' });
  });
});
