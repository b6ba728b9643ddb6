import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditEvidence } from '../../../src/audit/audit-evidence';
import { createAuditKeys } from '../../../src/audit/audit-keys';
import { createCheckpointer } from '../../../src/audit/checkpointer';
import { createFileAuditLog } from '../../../src/audit/file-audit-log';
import { createFileCheckpointStore } from '../../../src/audit/file-checkpoint-store';
import { manualClock } from '../../../src/clock';
import { canonicalize } from '../../../src/crypto/canonical-json';
import { canonicalJson } from '../../../src/crypto/hash';
import { createFileKeyStorage, createSealedKeyStore } from '../../../src/tokens/key-store';

/**
 * The checkpoint rule, held by the verifier: records the broker has not signed yet are fine while they
 * are young (a live broker signs within the interval), and evidence of a missing checkpoint once they
 * are old (a crash before the shutdown checkpoint, or checkpoints removed). A checkpoint signed with a
 * key that is not the broker's never counts.
 */
let dir: string;
const clock = manualClock(Date.parse('2025-01-01T00:00:00Z'));
const rule = { every: 100, intervalMs: 60_000 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-checkpoint-rule-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function setup(keysDir = dir) {
  const keys = createAuditKeys({ store: createSealedKeyStore(Buffer.alloc(32, 7), createFileKeyStorage(keysDir, 'audit-keys.json'), 'audit-key'), clock });
  await keys.init();
  const log = createFileAuditLog({ dir: join(dir, 'audit'), clock });
  const checkpoints = createFileCheckpointStore(join(dir, 'audit-checkpoints'));
  const checkpointer = createCheckpointer({ store: checkpoints, signer: () => keys.signer(), clock, rule });
  const evidence = createAuditEvidence({ log, checkpoints, keys: () => keys.published(), rule, clock });
  const append = async (n: number) => {
    for (let i = 0; i < n; i += 1) checkpointer.observe(await log.append('acme', { type: 'token' }));
  };
  return { keys, log, checkpoints, checkpointer, evidence, append };
}

test('records after the last checkpoint pass while young, and fail as unsealed once older than twice the interval', async () => {
  const { log, evidence, append, checkpointer } = await setup();
  await append(1); // the first record after a start is signed at once
  await checkpointer.sealNow('acme'); // waits for that checkpoint (nothing else is unsealed)
  await append(3); // a crash now: no shutdown checkpoint for records 2..4
  expect(await evidence.verify('acme')).toMatchObject({ ok: true, events: 4, signed_through: 1, unsealed: 3 });
  clock.advance(2 * rule.intervalMs + 1);
  expect((await evidence.verify('acme')).broken).toMatchObject({ kind: 'unsealed', seq: 2 });
  await log.close();
});

test('the shutdown checkpoint signs everything, and a checkpoint from another key ring does not count', async () => {
  const { log, evidence, append, checkpointer, checkpoints } = await setup();
  await append(5);
  await checkpointer.close();
  expect(await evidence.verify('acme')).toMatchObject({ ok: true, signed_through: 5, unsealed: 0 });

  const otherDir = await mkdtemp(join(tmpdir(), 'bulkhead-other-keys-'));
  try {
    const other = createAuditKeys({ store: createSealedKeyStore(Buffer.alloc(32, 9), createFileKeyStorage(otherDir, 'audit-keys.json'), 'audit-key'), clock });
    await other.init();
    const forger = createCheckpointer({ store: checkpoints, signer: () => other.signer(), clock, rule });
    forger.observe({ tenant: 'acme', seq: 5, hash: 'f'.repeat(64) });
    await forger.close();
    expect((await evidence.verify('acme')).broken).toMatchObject({ kind: 'checkpoint_invalid', problem: expect.stringMatching(/not an audit key of this broker/) });
  } finally {
    await rm(otherDir, { recursive: true, force: true });
  }
  await log.close();
});

test('a token-signing key blob cannot be opened as an audit key', async () => {
  const storage = createFileKeyStorage(dir, 'audit-keys.json');
  const tokenStore = createSealedKeyStore(Buffer.alloc(32, 7), storage);
  const tokenKeys = createAuditKeys({ store: tokenStore, clock });
  await tokenKeys.init();
  await expect(createSealedKeyStore(Buffer.alloc(32, 7), storage, 'audit-key').load()).rejects.toThrow(/audit-key .* cannot be opened/);
});

test('RFC 8785 canonical form: equal to canonicalJson on records, and refuses what RFC 8785 cannot represent', () => {
  const record = { tenant: 'acme', seq: 3, ts: '2025-01-01T00:00:00.000Z', detail: 'é\u2028"\\\n', records: 1e21, z: [1, { b: 1, a: 2 }] };
  expect(canonicalize(record)).toBe(canonicalJson(record));
  expect(canonicalize({ '\u20ac': 1, '\r': 2, '1': 3, a: 4 })).toBe('{"\\r":2,"1":3,"a":4,"€":1}');
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, '\uD800', { a: undefined }, new Date(0)]) expect(() => canonicalize(bad)).toThrow(/RFC 8785/);
});
