import { randomBytes } from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import { manualClock } from '../../../src/clock';
import { createTokenIssuer } from '../../../src/tokens/issuer';
import { createKeyRing } from '../../../src/tokens/key-ring';
import { createFileKeyStore, type KeyStore } from '../../../src/tokens/key-store';
import { createTokenVerifier } from '../../../src/tokens/verifier';
import { createKeyRotation } from '../../../rotation/key-rotation';
import { createSoleLeaderLock, type LeaderLock } from '../../../rotation/leader-lock';
import { ISSUER, MAX_TTL, reasonOf, SKEW, tempDir } from '../tokens/fixtures';
import { manualTimer } from './manual-timer';

const HOUR = 3_600_000;
const PERIOD = 24 * HOUR;
const ISSUE = { tenant: 'acme', principal: 'acme-agent', audience: 'crm-mcp', scope: ['query_crm'], ttlMs: 15 * 60_000 };
const notLeader: LeaderLock = { acquire: async () => false, release: async () => undefined };

/** One replica: a key ring on the shared keys.json, its issuer, verifier and rotation timer. */
async function replica(dir: string, masterKey: Buffer, clock: ReturnType<typeof manualClock>, options: { lock?: LeaderLock; store?: KeyStore } = {}) {
  const timer = manualTimer(clock);
  const keyRing = createKeyRing({ store: options.store ?? createFileKeyStore(dir, masterKey), clock, maxTokenTtlMs: MAX_TTL, clockSkewMs: SKEW });
  await keyRing.init();
  const rotation = createKeyRotation({ keyRing, lock: options.lock ?? createSoleLeaderLock(), clock, timer, periodMs: PERIOD, followIntervalMs: HOUR });
  const issuer = createTokenIssuer({ keyRing, clock, issuer: ISSUER });
  const verifier = createTokenVerifier({ keyRing, clock, issuer: ISSUER, clockSkewMs: SKEW, cacheSize: 0 });
  const kidOf = (state: string) => keyRing.status().find((k) => k.state === state)?.kid;
  return { keyRing, rotation, issuer, verifier, timer, kidOf };
}

describe('signing key rotation timer', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let masterKey: Buffer;
  let clock: ReturnType<typeof manualClock>;
  const T0 = Date.UTC(2030, 0, 1);
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    masterKey = randomBytes(32);
    clock = manualClock(T0);
  });
  afterEach(() => cleanup());

  it('does not rotate before the current key has signed for one period, then rotates to the key published a period earlier', async () => {
    const r = await replica(dir, masterKey, clock);
    await r.rotation.start();
    const [current, next] = [r.kidOf('current'), r.kidOf('next')];
    expect(r.rotation.nextRotationAt()).toBe(T0 + PERIOD);
    await r.timer.advanceTo(T0 + PERIOD - 1);
    expect(r.kidOf('current')).toBe(current);
    expect(r.keyRing.jwks().keys.map((k) => k.kid)).toContain(next);
    await r.timer.advanceTo(T0 + PERIOD);
    expect(r.kidOf('current')).toBe(next);
    expect(r.kidOf('previous')).toBe(current);
    expect(r.rotation.nextRotationAt()).toBe(T0 + 2 * PERIOD);
    await r.rotation.stop();
  });

  it('keeps every token verifying until it expires across three rotations', async () => {
    const r = await replica(dir, masterKey, clock);
    await r.rotation.start();
    for (let i = 1; i <= 3; i++) {
      await r.timer.advanceTo(T0 + i * PERIOD - 60_000);
      const { token, claims } = await r.issuer.issue(ISSUE);
      await r.timer.advanceTo(T0 + i * PERIOD);
      expect(r.keyRing.signingKey().kid).not.toBe(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid);
      // Signed by the key that just stopped signing: valid for its whole life, refused only once expired.
      expect(await reasonOf(r.verifier.verify(token, 'crm-mcp'))).toBe('verified');
      await r.timer.advanceTo(claims.exp * 1000 - 1000);
      expect(await reasonOf(r.verifier.verify(token, 'crm-mcp'))).toBe('verified');
      await r.timer.advanceTo(claims.exp * 1000 + SKEW + 1000);
      expect(await reasonOf(r.verifier.verify(token, 'crm-mcp'))).toBe('token_expired');
    }
    expect(r.keyRing.status().filter((k) => k.state === 'retired')).toHaveLength(1);
    await r.rotation.stop();
  });

  it('a retired key verifies until max token TTL + clock skew after retirement, and never after', async () => {
    const r = await replica(dir, masterKey, clock);
    await r.rotation.start();
    const first = r.kidOf('current')!;
    const opened = await createFileKeyStore(dir, masterKey).load();
    const privateJwk = opened!.keys.find((k) => k.kid === first)!.private_jwk;
    await r.timer.advanceTo(T0 + PERIOD); // first → previous
    await r.timer.advanceTo(T0 + 2 * PERIOD); // first → retired
    const retiredAt = r.keyRing.status().find((k) => k.kid === first)!.retiredAt!;
    expect(r.kidOf('retired')).toBe(first);
    expect(r.keyRing.jwks().keys.map((k) => k.kid)).not.toContain(first);

    // A token signed by the retired key, fresh enough that only the key's window can refuse it.
    const forge = async () => {
      const iat = Math.floor(clock.now() / 1000);
      const claims = { tid: 'acme', sid: 's', jti: `j${iat}`, scope: 'query_crm' };
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: first })
        .setIssuer(ISSUER)
        .setSubject('acme-agent')
        .setAudience('crm-mcp')
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(iat + 60)
        .sign(await importJWK({ ...privateJwk }, 'EdDSA'));
    };
    clock.set(retiredAt + MAX_TTL + SKEW);
    expect(await reasonOf(r.verifier.verify(await forge(), 'crm-mcp'))).toBe('verified');
    clock.set(retiredAt + MAX_TTL + SKEW + 1);
    expect(r.keyRing.verificationKey(first)).toBeUndefined();
    expect(await reasonOf(r.verifier.verify(await forge(), 'crm-mcp'))).toBe('token_invalid');
    await r.rotation.stop();
  });

  it('a replica without the leader lock never rotates, but follows the leader by reloading', async () => {
    const leader = await replica(dir, masterKey, clock);
    const follower = await replica(dir, masterKey, clock, { lock: notLeader });
    await leader.rotation.start();
    await follower.rotation.start();
    expect(follower.rotation.isLeader()).toBe(false);
    const before = follower.kidOf('current');
    await follower.timer.advanceTo(T0 + PERIOD + HOUR / 2);
    expect(follower.kidOf('current')).toBe(before); // due, but not its job
    await leader.timer.advanceTo(T0 + PERIOD + HOUR / 2);
    expect(leader.kidOf('current')).not.toBe(before);
    await follower.timer.advanceTo(T0 + PERIOD + 2 * HOUR); // its next follow check
    expect(follower.keyRing.signingKey().kid).toBe(leader.kidOf('current'));
    const token = (await leader.issuer.issue(ISSUE)).token;
    expect(await reasonOf(follower.verifier.verify(token, 'crm-mcp'))).toBe('verified');
    await leader.rotation.stop();
    await follower.rotation.stop();
  });

  it('a save that fails mid-step changes nothing, and the next check retries the step', async () => {
    const real = createFileKeyStore(dir, masterKey);
    let failSaves = 0;
    const flaky: KeyStore = {
      load: () => real.load(),
      save: async (ring) => {
        if (failSaves > 0) {
          failSaves -= 1;
          throw new Error('disk full');
        }
        await real.save(ring);
      },
    };
    const r = await replica(dir, masterKey, clock, { store: flaky });
    await r.rotation.start();
    const before = r.keyRing.status();
    failSaves = 1;
    await r.timer.advanceTo(T0 + PERIOD);
    expect(r.keyRing.status().map((k) => [k.kid, k.state])).toEqual(before.map((k) => [k.kid, k.state]));
    expect((await real.load())!.keys.map((k) => k.state).sort()).toEqual(['current', 'next']);
    await r.timer.fireNext(); // the retry, a second later
    expect(r.kidOf('previous')).toBe(before.find((k) => k.state === 'current')!.kid);
    await r.rotation.stop();
  });

  it('a restart long after the rotation was due steps exactly once, before serving', async () => {
    const first = await replica(dir, masterKey, clock);
    await first.rotation.start();
    const token = (await first.issuer.issue(ISSUE)).token;
    await first.rotation.stop();
    clock.set(T0 + 5 * PERIOD); // down for five periods
    const restarted = await replica(dir, masterKey, clock);
    await restarted.rotation.start();
    const states = restarted.keyRing.status().map((k) => k.state).sort();
    expect(states).toEqual(['current', 'next', 'previous']);
    expect(restarted.rotation.nextRotationAt()).toBe(T0 + 6 * PERIOD);
    // The token is long expired by now; the key that signed it is still `previous`, so it is trusted.
    expect(restarted.keyRing.verificationKey(restarted.kidOf('previous')!)).toBeDefined();
    expect(await reasonOf(restarted.verifier.verify(token, 'crm-mcp'))).toBe('token_expired');
    await restarted.rotation.stop();
  });

  it('a forced rotation steps now and the timer counts the next period from it', async () => {
    const r = await replica(dir, masterKey, clock);
    await r.rotation.start();
    clock.set(T0 + 3 * HOUR);
    const next = r.kidOf('next');
    const result = await r.rotation.rotateNow();
    expect(result.kid).toBe(next);
    expect(r.rotation.nextRotationAt()).toBe(T0 + 3 * HOUR + PERIOD);
    await r.timer.advanceTo(T0 + PERIOD + HOUR);
    expect(r.kidOf('current')).toBe(next);
    await r.rotation.stop();
  });
});
