import { randomBytes } from 'node:crypto';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openSealed, seal } from '../src/crypto/envelope';
import { masterKeyKek, MASTER_KEK_ID, type KeyEncryptionKey, type KeyEncryptionKeys } from '../src/crypto/key-encryption-key';
import { isPolicyId } from '../src/policy/schema';
import { replaceFile, syncDir } from '../src/storage/atomic-file';
import { createCachedFileReader } from './cached-file-reader';

/**
 * The embedded secret store, under `<dataDir>/secrets/` (0700):
 *   `<tenant>.key`  the tenant's random 32-byte data key, wrapped by the tenant's key-encryption key:
 *                   the master key (default), or a Vault transit / AWS KMS key the tenant controls;
 *                   one JSON line `{"kek": id, "wrapped": …}` (a bare sealed line is master-wrapped)
 *   `<tenant>.json` name → value sealed with the tenant's data key
 * Two layers so that deleting one small file (the data key) shreds every secret of one tenant in every
 * copy of `<tenant>.json`, and, with an external root, disabling that root shreds them in every copy and
 * backup of the whole data dir. The associated data of each seal names the tenant (and the secret), so
 * a blob moved to another tenant's file or name does not open even under the right key. Unwrapped data
 * keys stay in memory only, in a bounded cache that is dropped when the key file changes.
 */

export interface LocalSecretStore {
  set(tenant: string, name: string, value: string): Promise<void>;
  /** Undefined when there is no such secret; throws when it exists but cannot be opened (shredded, tampered). */
  get(tenant: string, name: string): Promise<string | undefined>;
  /** True when a secret was removed. */
  delete(tenant: string, name: string): Promise<boolean>;
  /** Names only, sorted. */
  list(tenant: string): Promise<string[]>;
  /** Deletes the tenant's data key: its secrets can never be opened again, wherever copies of them sit. */
  shredTenant(tenant: string): Promise<void>;
}

export interface LocalSecretStoreOptions {
  dataDir: string;
  masterKey: Buffer;
  /** Each tenant's key-encryption key (default: the master key for every tenant). */
  keks?: KeyEncryptionKeys;
  /** How long an unwrapped data key is reused before the root is asked again (default 60 s). */
  dataKeyCacheMs?: number;
  now?: () => number;
}

/** At most this many tenants' unwrapped data keys are held at once. */
const DATA_KEY_CACHE_SIZE = 1024;

type SecretsFile = Record<string, string>;

export function createLocalSecretStore(options: LocalSecretStoreOptions): LocalSecretStore {
  const dir = join(options.dataDir, 'secrets');
  const { masterKey } = options;
  const masterKek = masterKeyKek(masterKey);
  const kekOf = options.keks ?? (() => masterKek);
  const cacheMs = options.dataKeyCacheMs ?? 60_000;
  const now = options.now ?? Date.now;
  const dataKeys = new Map<string, { text: string; key: Buffer; expiresAt: number }>();
  // Read-modify-write of one tenant's files is serialised in this process; other tenants run freely.
  const locks = new Map<string, Promise<unknown>>();
  // Every call reads both files; a stat per file tells whether the bytes read last time are still current.
  const files = createCachedFileReader();

  function withTenantLock<T>(tenant: string, work: () => Promise<T>): Promise<T> {
    const previous = locks.get(tenant) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    locks.set(tenant, settled);
    void settled.then(() => {
      if (locks.get(tenant) === settled) locks.delete(tenant);
    });
    return next;
  }

  const keyPath = (tenant: string) => join(dir, `${checkId('tenant', tenant)}.key`);
  const secretsPath = (tenant: string) => join(dir, `${checkId('tenant', tenant)}.json`);

  async function ensureDir(): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700); // mkdir's mode is filtered by umask and ignored if the directory existed.
  }

  /** The KEK that opens a key file: the policy's, or the master key for a file from before a move. */
  function kekFor(tenant: string, recorded: string): KeyEncryptionKey {
    const current = kekOf(tenant);
    if (current.id === recorded) return current;
    if (recorded === MASTER_KEK_ID) return masterKek;
    throw new Error(`tenant "${tenant}"'s data key is wrapped by ${recorded}, but policy names ${current.id}`);
  }

  async function readDataKey(tenant: string): Promise<{ key: Buffer; kek: string } | undefined> {
    const text = await files.read(keyPath(tenant));
    if (text === undefined) {
      dataKeys.delete(tenant);
      return undefined;
    }
    const record = parseKeyFile(text);
    const cached = dataKeys.get(tenant);
    if (cached && cached.text === text && cached.expiresAt > now()) return { key: cached.key, kek: record.kek };
    const key = await kekFor(tenant, record.kek).unwrap(record.wrapped, `tenant-data-key:${tenant}`);
    dataKeys.delete(tenant);
    if (dataKeys.size >= DATA_KEY_CACHE_SIZE) dataKeys.delete(dataKeys.keys().next().value!);
    dataKeys.set(tenant, { text, key, expiresAt: now() + cacheMs });
    return { key, kek: record.kek };
  }

  async function writeDataKey(tenant: string, key: Buffer): Promise<void> {
    const kek = kekOf(tenant);
    const wrapped = await kek.wrap(key, `tenant-data-key:${tenant}`);
    await replaceFile(keyPath(tenant), JSON.stringify({ kek: kek.id, wrapped }) + '\n');
  }

  async function readSecrets(tenant: string): Promise<SecretsFile> {
    const text = await files.read(secretsPath(tenant));
    if (text === undefined) return {};
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${secretsPath(tenant)} is not a JSON object`);
    return parsed as SecretsFile;
  }

  async function dataKeyForWrite(tenant: string): Promise<Buffer> {
    const existing = await readDataKey(tenant);
    if (existing) {
      // The tenant moved to another root (policy): wrap the same data key under it from now on.
      if (existing.kek !== kekOf(tenant).id) await writeDataKey(tenant, existing.key);
      return existing.key;
    }
    // A new key cannot open ciphertexts left from before a shred; drop them rather than keep dead entries.
    const key = randomBytes(32);
    await replaceFile(secretsPath(tenant), '{}\n');
    await writeDataKey(tenant, key);
    return key;
  }

  return {
    async set(tenant, name, value) {
      checkId('secret name', name);
      return withTenantLock(tenant, async () => {
        await ensureDir();
        const key = await dataKeyForWrite(tenant);
        const secrets = await readSecrets(tenant);
        secrets[name] = seal(key, Buffer.from(value, 'utf8'), `local-secret:${tenant}:${name}`);
        await replaceFile(secretsPath(tenant), JSON.stringify(secrets, null, 2) + '\n');
      });
    },

    async get(tenant, name) {
      checkId('secret name', name);
      // Both files are read at once (this runs on every tool call); the key's outcome, error included,
      // only counts when the secret exists, as if it had been read second.
      const keyRead = readDataKey(tenant);
      keyRead.catch(() => undefined);
      const secrets = await readSecrets(tenant);
      if (!Object.prototype.hasOwnProperty.call(secrets, name)) return undefined;
      const sealed = secrets[name];
      if (typeof sealed !== 'string') throw new Error(`secret "${name}" of tenant "${tenant}" is malformed`);
      const dataKey = await keyRead;
      if (!dataKey) throw new Error(`tenant "${tenant}" has no data key (its secrets were shredded)`);
      return openSealed(dataKey.key, sealed, `local-secret:${tenant}:${name}`).toString('utf8');
    },

    async delete(tenant, name) {
      checkId('secret name', name);
      return withTenantLock(tenant, async () => {
        const secrets = await readSecrets(tenant);
        if (!Object.prototype.hasOwnProperty.call(secrets, name)) return false;
        delete secrets[name];
        await replaceFile(secretsPath(tenant), JSON.stringify(secrets, null, 2) + '\n');
        return true;
      });
    },

    async list(tenant) {
      return Object.keys(await readSecrets(tenant)).sort();
    },

    async shredTenant(tenant) {
      checkId('tenant', tenant);
      return withTenantLock(tenant, async () => {
        // The key goes first: once it is gone the ciphertexts are noise, so a crash between the two
        // steps leaves nothing readable. Removing the secrets file after is only housekeeping.
        await unlinkIfExists(keyPath(tenant));
        await syncDir(dir);
        dataKeys.delete(tenant);
        await unlinkIfExists(secretsPath(tenant));
        await syncDir(dir);
      });
    },
  };
}

/** A key file: one JSON line naming its KEK, or (written before KEKs existed) a bare master-sealed line. */
function parseKeyFile(text: string): { kek: string; wrapped: string } {
  const line = text.trim();
  if (!line.startsWith('{')) return { kek: MASTER_KEK_ID, wrapped: line };
  const parsed = JSON.parse(line) as { kek?: unknown; wrapped?: unknown };
  if (typeof parsed.kek !== 'string' || typeof parsed.wrapped !== 'string') throw new Error('tenant data key file is malformed');
  return { kek: parsed.kek, wrapped: parsed.wrapped };
}

/** Tenant ids and secret names are policy IDs; the extra checks keep them from ever naming another path. */
function checkId(what: string, value: string): string {
  if (!isPolicyId(value) || value.includes('/') || value.includes('..') || value.includes('\0')) {
    throw new Error(`invalid ${what}`);
  }
  return value;
}

async function unlinkIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
