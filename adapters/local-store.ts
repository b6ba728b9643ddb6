import { randomBytes } from 'node:crypto';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openSealed, seal } from '../src/crypto/envelope';
import { idSchema } from '../src/policy/schema';
import { replaceFile, syncDir } from '../src/storage/atomic-file';
import { createCachedFileReader } from './cached-file-reader';

/**
 * The embedded secret store, under `<dataDir>/secrets/` (0700):
 *   `<tenant>.key`  the tenant's random 32-byte data key, sealed with the master key
 *   `<tenant>.json` name → value sealed with the tenant's data key
 * Two layers so that deleting one small file (the data key) shreds every secret of one tenant, in every
 * copy and backup of `<tenant>.json`, without touching the master key or any other tenant. The associated
 * data of each seal names the tenant (and the secret), so a blob moved to another tenant's file or name
 * does not open even under the right key.
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
}

type SecretsFile = Record<string, string>;

export function createLocalSecretStore(options: LocalSecretStoreOptions): LocalSecretStore {
  const dir = join(options.dataDir, 'secrets');
  const { masterKey } = options;
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

  async function readDataKey(tenant: string): Promise<Buffer | undefined> {
    const sealed = await files.read(keyPath(tenant));
    if (sealed === undefined) return undefined;
    return openSealed(masterKey, sealed.trim(), `tenant-data-key:${tenant}`);
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
    if (existing) return existing;
    // A new key cannot open ciphertexts left from before a shred; drop them rather than keep dead entries.
    const key = randomBytes(32);
    await replaceFile(secretsPath(tenant), '{}\n');
    await replaceFile(keyPath(tenant), seal(masterKey, key, `tenant-data-key:${tenant}`) + '\n');
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
      const key = await keyRead;
      if (!key) throw new Error(`tenant "${tenant}" has no data key (its secrets were shredded)`);
      return openSealed(key, sealed, `local-secret:${tenant}:${name}`).toString('utf8');
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
        await unlinkIfExists(secretsPath(tenant));
        await syncDir(dir);
      });
    },
  };
}

/** Tenant ids and secret names are policy IDs; the extra checks keep them from ever naming another path. */
function checkId(what: string, value: string): string {
  if (!idSchema.safeParse(value).success || value.includes('/') || value.includes('..') || value.includes('\0')) {
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
