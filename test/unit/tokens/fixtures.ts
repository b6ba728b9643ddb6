import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualClock } from '../../../src/clock';
import { sha256Hex } from '../../../src/crypto/hash';
import { isBrokerError } from '../../../src/errors';
import { parsePolicy } from '../../../src/policy/load';
import type { Policy } from '../../../src/policy/schema';
import { revocationKey, subjectKeys, type RevocationStore, type RevocationTarget } from '../../../src/revocation/revocation-store';
import { createTokenIssuer } from '../../../src/tokens/issuer';
import { createKeyRing } from '../../../src/tokens/key-ring';
import { createFileKeyStore } from '../../../src/tokens/key-store';
import { createTokenVerifier } from '../../../src/tokens/verifier';

/** Shared setup for the token tests: real files, real keys, a clock the test moves. */

export const ISSUER = 'http://127.0.0.1:8700';
export const MINUTE = 60_000;
export const MAX_TTL = 60 * MINUTE;
export const SKEW = 30_000;

export const SECRETS = {
  acmeAgent: 'acme-agent-secret-' + randomBytes(16).toString('hex'),
  acmeShared: 'acme-shared-secret-' + randomBytes(16).toString('hex'),
  betaAgent: 'beta-agent-secret-' + randomBytes(16).toString('hex'),
  betaShared: 'beta-shared-secret-' + randomBytes(16).toString('hex'),
};

const crm = { crm: { source: 'local', name: 'crm' } };

/** Two tenants, two servers; `shared` is a principal id both tenants use. */
export function testPolicy(idp: { acme?: object; beta?: object } = {}): Policy {
  return parsePolicy({
    broker: { issuer: ISSUER, token_ttl: '15m', max_token_ttl: '60m', clock_skew: '30s' },
    servers: {
      'crm-mcp': { key_sha256: sha256Hex('crm-key'), tools: ['query_crm', 'export_report', 'send_email'], resource: 'https://crm.example.com/mcp' },
      'billing-mcp': { key_sha256: sha256Hex('billing-key'), tools: ['charge', 'query_crm'] },
    },
    tenants: {
      acme: {
        principals: {
          'acme-agent': { secret_sha256: sha256Hex(SECRETS.acmeAgent), tools: ['query_crm', 'export_report', 'charge'] },
          shared: { secret_sha256: sha256Hex(SECRETS.acmeShared), tools: ['query_crm'] },
        },
        tools: { query_crm: { credential: 'crm' }, export_report: { credential: 'crm' }, send_email: { credential: 'crm' }, charge: { credential: 'crm' } },
        credentials: crm,
        ...(idp.acme ? { idp: idp.acme } : {}),
      },
      beta: {
        principals: {
          'beta-agent': { secret_sha256: sha256Hex(SECRETS.betaAgent), tools: ['query_crm', 'send_email'] },
          shared: { secret_sha256: sha256Hex(SECRETS.betaShared), tools: ['send_email'] },
        },
        tools: { query_crm: { credential: 'crm' }, send_email: { credential: 'crm' } },
        credentials: crm,
        ...(idp.beta ? { idp: idp.beta } : {}),
      },
    },
  });
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-tokens-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A key ring on a real keys.json, an issuer and a verifier sharing one manual clock. */
export async function tokenKit(dir: string, options: { masterKey?: Buffer; cacheSize?: number } = {}) {
  const clock = manualClock(Date.UTC(2030, 0, 1));
  const masterKey = options.masterKey ?? randomBytes(32);
  const keyRing = createKeyRing({ store: createFileKeyStore(dir, masterKey), clock, maxTokenTtlMs: MAX_TTL, clockSkewMs: SKEW });
  await keyRing.init();
  const issuer = createTokenIssuer({ keyRing, clock, issuer: ISSUER });
  const verifier = createTokenVerifier({ keyRing, clock, issuer: ISSUER, clockSkewMs: SKEW, cacheSize: options.cacheSize });
  return { clock, masterKey, keyRing, issuer, verifier };
}

/** A tiny in-memory revocation list: only what the token service needs (`check`). */
export function revocationStub(): Pick<RevocationStore, 'check'> & { revoke(target: RevocationTarget): void } {
  const revoked = new Set<string>();
  return {
    revoke(target) {
      revoked.add(revocationKey(target));
    },
    async check(subject) {
      for (const [key, reason] of subjectKeys(subject)) if (revoked.has(key)) return reason;
      return null;
    },
  };
}

/** "verified", or the deny reason a verification failed with (anything else is rethrown). */
export async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'verified';
  } catch (err) {
    if (isBrokerError(err)) return err.reason;
    throw err;
  }
}
