import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { manualClock } from '../../../src/clock';
import { createKeyRing } from '../../../src/tokens/key-ring';
import { signingKeyReadiness } from '../../../src/tokens/signing-key-readiness';
import { createFileKeyStore, KEYS_FILE, type KeyStore } from '../../../src/tokens/key-store';
import { createTokenVerifier } from '../../../src/tokens/verifier';
import { ISSUER, MAX_TTL, MINUTE, reasonOf, SKEW, tempDir, tokenKit } from './fixtures';

const ISSUE = { tenant: 'acme', principal: 'acme-agent', audience: 'crm-mcp', scope: ['query_crm'] };

describe('signing key ring', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it('starts with one current and one next key, both published', async () => {
    const { keyRing } = await tokenKit(dir);
    const states = keyRing.status().map((key) => key.state).sort();
    expect(states).toEqual(['current', 'next']);
    expect(keyRing.jwks().keys.map((key) => key.kid).sort()).toEqual(keyRing.status().map((key) => key.kid).sort());
  });

  it('is ready (for /readyz) only with a usable current signing key, and says why not', async () => {
    const unopened = createKeyRing({ store: createFileKeyStore(dir, randomBytes(32)), clock: manualClock(), maxTokenTtlMs: MAX_TTL, clockSkewMs: SKEW });
    expect(signingKeyReadiness(unopened)).toEqual({ ok: false, problem: expect.stringMatching(/^no usable signing key: key ring is not initialised/) });
    const { keyRing } = await tokenKit(dir);
    expect(signingKeyReadiness(keyRing)).toEqual({ ok: true });
    await keyRing.rotate();
    expect(signingKeyReadiness(keyRing)).toEqual({ ok: true });
    // A ring whose current key is not published (an inconsistent store) is not usable: tokens would not verify.
    const unpublished = { ...keyRing, jwks: () => ({ keys: [] }) };
    expect(signingKeyReadiness(unpublished)).toEqual({ ok: false, problem: expect.stringMatching(/not published/) });
  });

  it('publishes only public members in the JWKS, never "d", across rotations', async () => {
    const { keyRing } = await tokenKit(dir);
    for (let i = 0; i < 4; i++) await keyRing.rotate();
    const jwks = keyRing.jwks();
    expect(jwks.keys).toHaveLength(3);
    for (const key of jwks.keys) {
      expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
    }
    expect(JSON.stringify(jwks)).not.toMatch(/"d"/);
  });

  it('keeps keys.json free of plaintext private keys, mode 0600', async () => {
    const { keyRing, masterKey } = await tokenKit(dir);
    await keyRing.rotate();
    const text = await readFile(join(dir, KEYS_FILE), 'utf8');
    const opened = await createFileKeyStore(dir, masterKey).load();
    expect(opened?.keys).toHaveLength(3);
    for (const key of opened!.keys) expect(text).not.toContain(key.private_jwk.d);
    expect(text).not.toMatch(/"d"\s*:/);
    expect((await stat(join(dir, KEYS_FILE))).mode & 0o777).toBe(0o600);
  });

  it('refuses to load keys.json with a different master key', async () => {
    await tokenKit(dir);
    const other = createKeyRing({ store: createFileKeyStore(dir, randomBytes(32)), clock: manualClock(), maxTokenTtlMs: MAX_TTL, clockSkewMs: SKEW });
    await expect(other.init()).rejects.toThrow(/cannot be opened/);
  });

  it('refuses a keys.json whose public key was swapped for another one', async () => {
    const { masterKey } = await tokenKit(dir);
    const path = join(dir, KEYS_FILE);
    const stored = JSON.parse(await readFile(path, 'utf8'));
    const { dir: otherDir, cleanup: cleanupOther } = await tempDir();
    try {
      await tokenKit(otherDir);
      const foreign = JSON.parse(await readFile(join(otherDir, KEYS_FILE), 'utf8'));
      stored.keys[0].public_jwk = foreign.keys[0].public_jwk;
      await writeFile(path, JSON.stringify(stored));
      await expect(createFileKeyStore(dir, masterKey).load()).rejects.toThrow(/does not match/);
    } finally {
      await cleanupOther();
    }
  });

  it('reloads the same keys after a restart', async () => {
    const { keyRing, masterKey, clock } = await tokenKit(dir);
    const restarted = createKeyRing({ store: createFileKeyStore(dir, masterKey), clock, maxTokenTtlMs: MAX_TTL, clockSkewMs: SKEW });
    await restarted.init();
    expect(restarted.signingKey().kid).toBe(keyRing.signingKey().kid);
    expect(restarted.jwks()).toEqual(keyRing.jwks());
  });

  it('signs with the key that was published as next, and keeps old tokens verifying after rotation', async () => {
    const { keyRing, issuer, verifier, clock } = await tokenKit(dir);
    const published = keyRing.jwks().keys.map((key) => key.kid);
    const next = keyRing.status().find((key) => key.state === 'next')!.kid;
    const first = keyRing.signingKey().kid;
    const old = await issuer.issue({ ...ISSUE, ttlMs: MAX_TTL });

    clock.advance(MINUTE);
    await keyRing.rotate();
    expect(keyRing.signingKey().kid).toBe(next);
    expect(published).toContain(keyRing.signingKey().kid);
    await expect(verifier.verify(old.token, 'crm-mcp')).resolves.toMatchObject({ jti: old.claims.jti });

    clock.advance(MINUTE);
    await keyRing.rotate(); // the old key is now retired: out of the JWKS, still verifying
    expect(keyRing.jwks().keys.map((key) => key.kid)).not.toContain(first);
    await expect(verifier.verify(old.token, 'crm-mcp')).resolves.toMatchObject({ jti: old.claims.jti });
  });

  it('stops trusting a retired key once every token it signed has expired', async () => {
    const { keyRing, clock } = await tokenKit(dir);
    // A verifier without a cache, so each answer comes from the key ring.
    const verifier = createTokenVerifier({ keyRing, clock, issuer: ISSUER, clockSkewMs: SKEW, cacheSize: 0 });
    const retiring = keyRing.signingKey();
    const mint = async () => {
      const iat = Math.floor(clock.now() / 1000);
      const claims = { iss: ISSUER, sub: 'acme-agent', aud: 'crm-mcp', tid: 'acme', sid: 's', jti: `j${iat}`, scope: 'query_crm', iat, nbf: iat, exp: iat + 600 };
      return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: retiring.kid }).sign(retiring.privateKey);
    };

    await keyRing.rotate();
    await keyRing.rotate();
    const retiredAt = clock.now();
    expect(keyRing.status().find((key) => key.kid === retiring.kid)).toMatchObject({ state: 'retired', retiredAt });

    clock.set(retiredAt + MAX_TTL + SKEW);
    expect(await reasonOf(verifier.verify(await mint(), 'crm-mcp'))).toBe('verified');

    clock.set(retiredAt + MAX_TTL + SKEW + 1);
    expect(keyRing.verificationKey(retiring.kid)).toBeUndefined();
    expect(await reasonOf(verifier.verify(await mint(), 'crm-mcp'))).toBe('token_invalid');

    await keyRing.rotate(); // and the next rotation drops it from the store for good
    expect(keyRing.status().map((key) => key.kid)).not.toContain(retiring.kid);
  });

  it('lets a replica verify tokens from a peer that rotated first, and follow it on reload', async () => {
    const a = await tokenKit(dir);
    const b = createKeyRing({ store: createFileKeyStore(dir, a.masterKey), clock: a.clock, maxTokenTtlMs: MAX_TTL, clockSkewMs: SKEW });
    await b.init();
    const bVerifier = createTokenVerifier({ keyRing: b, clock: a.clock, issuer: ISSUER, clockSkewMs: SKEW });

    await a.keyRing.rotate();
    const fresh = await a.issuer.issue({ ...ISSUE, ttlMs: 15 * MINUTE });
    await expect(bVerifier.verify(fresh.token, 'crm-mcp')).resolves.toMatchObject({ tenant: 'acme' });

    await b.reload();
    expect(b.signingKey().kid).toBe(a.keyRing.signingKey().kid);
    expect(b.jwks()).toEqual(a.keyRing.jwks());
  });

  it('changes nothing in memory when saving a rotation fails, and the retry succeeds', async () => {
    const { masterKey, clock } = await tokenKit(dir);
    const real = createFileKeyStore(dir, masterKey);
    let failSaves = true;
    const flaky: KeyStore = {
      load: () => real.load(),
      save: async (ring) => {
        if (failSaves) throw new Error('disk full');
        await real.save(ring);
      },
    };
    const ring = createKeyRing({ store: flaky, clock, maxTokenTtlMs: MAX_TTL, clockSkewMs: SKEW });
    await ring.init();
    const before = { signing: ring.signingKey().kid, jwks: ring.jwks() };

    await expect(ring.rotate()).rejects.toThrow('disk full');
    expect(ring.signingKey().kid).toBe(before.signing);
    expect(ring.jwks()).toEqual(before.jwks);

    failSaves = false;
    await ring.rotate();
    expect(ring.signingKey().kid).not.toBe(before.signing);
    const persisted = await real.load();
    expect(persisted!.keys.find((key) => key.state === 'current')!.kid).toBe(ring.signingKey().kid);
  });

  it('rotates once when asked twice at the same time', async () => {
    const { keyRing } = await tokenKit(dir);
    await Promise.all([keyRing.rotate(), keyRing.rotate()]);
    expect(keyRing.status().map((key) => key.state).sort()).toEqual(['current', 'next', 'previous']);
  });
});
