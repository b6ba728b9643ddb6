import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileRevocationStore, createMemoryRevocationStore, REVOCATIONS_FILE } from '../../../src/revocation/file-revocation-store';

// Issued long after the revocations below (at: 1, 2, … ms), so only an active revocation can deny it.
const subject = { tid: 'acme', sub: 'acme-agent', sid: 'sess-1', jti: 'jti-1', iat: 1000 };

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'bulkhead-revocation-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('file revocation store', () => {
  test('a tenant revocation survives a new instance on the same data dir', async () => {
    const first = await createFileRevocationStore({ dataDir });
    await first.revoke({ target: { kind: 'tenant', tenant: 'acme' }, reason: 'incident', at: 1 });
    await first.close();

    const second = await createFileRevocationStore({ dataDir });
    expect(await second.check(subject)).toBe('tenant_revoked');
    expect(await second.isTenantRevoked('acme')).toBe(true);
    expect(await second.isTenantRevoked('globex')).toBe(false);
    await second.close();
  });

  test('the revocation is on disk by the time revoke resolves', async () => {
    const store = await createFileRevocationStore({ dataDir });
    await store.revoke({ target: { kind: 'jti', jti: 'jti-1' }, at: 5 });
    const lines = (await readFile(join(dataDir, REVOCATIONS_FILE), 'utf8')).trim().split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual([{ target: { kind: 'jti', jti: 'jti-1' }, at: 5 }]);
    await store.close();
  });

  test('restore lifts a tenant revocation, durably, and only that', async () => {
    const store = await createFileRevocationStore({ dataDir });
    await store.revoke({ target: { kind: 'tenant', tenant: 'acme' }, at: 1 });
    await store.revoke({ target: { kind: 'session', session: 'sess-1' }, at: 2 });
    expect(await store.restoreTenant('acme')).toBe(true);
    expect(await store.isTenantRevoked('acme')).toBe(false);
    expect(await store.check(subject)).toBe('session_revoked');
    await store.close();

    const reopened = await createFileRevocationStore({ dataDir });
    expect(await reopened.isTenantRevoked('acme')).toBe(false);
    expect(await reopened.check(subject)).toBe('session_revoked');
    await reopened.close();
  });

  test('restoreTenant cannot lift principal, session or token revocations', async () => {
    const store = await createFileRevocationStore({ dataDir });
    await store.revoke({ target: { kind: 'principal', tenant: 'acme', principal: 'acme-agent' }, at: 1 });
    await store.revoke({ target: { kind: 'jti', jti: 'jti-9' }, at: 1 });
    expect(await store.restoreTenant('acme')).toBe(false);
    expect(await store.check(subject)).toBe('principal_revoked');
    expect(await store.check({ ...subject, sub: 'other', jti: 'jti-9' })).toBe('token_revoked');
    await store.close();
  });

  test('a tenant revoked again after a restore stays revoked across restart', async () => {
    const store = await createFileRevocationStore({ dataDir });
    await store.revoke({ target: { kind: 'tenant', tenant: 'acme' }, at: 1 });
    await store.restoreTenant('acme');
    await store.revoke({ target: { kind: 'tenant', tenant: 'acme' }, at: 3 });
    await store.close();
    const reopened = await createFileRevocationStore({ dataDir });
    expect(await reopened.isTenantRevoked('acme')).toBe(true);
    await reopened.close();
  });

  test('a revoke racing a restore wins, in memory and on disk alike', async () => {
    const store = await createFileRevocationStore({ dataDir });
    await store.revoke({ target: { kind: 'tenant', tenant: 'acme' }, at: 1 });
    const restoring = store.restoreTenant('acme');
    const revoking = store.revoke({ target: { kind: 'tenant', tenant: 'acme' }, at: 2 });
    await Promise.all([restoring, revoking]);
    expect(await store.isTenantRevoked('acme')).toBe(true);
    await store.close();
    const reopened = await createFileRevocationStore({ dataDir });
    expect(await reopened.isTenantRevoked('acme')).toBe(true);
    await reopened.close();
  });

  test('a principal revocation does not reach the same principal name in another tenant', async () => {
    const store = await createFileRevocationStore({ dataDir });
    await store.revoke({ target: { kind: 'principal', tenant: 'acme', principal: 'agent' }, at: 1 });
    expect(await store.check({ tid: 'acme', sub: 'agent', sid: 's', jti: 'j', iat: 1000 })).toBe('principal_revoked');
    expect(await store.check({ tid: 'globex', sub: 'agent', sid: 's', jti: 'j', iat: 1000 })).toBeNull();
    await store.close();
  });

  test('reasons take precedence tenant, principal, session, then token', async () => {
    const store = createMemoryRevocationStore();
    await store.revoke({ target: { kind: 'jti', jti: 'jti-1' }, at: 1 });
    expect(await store.check(subject)).toBe('token_revoked');
    await store.revoke({ target: { kind: 'session', session: 'sess-1' }, at: 1 });
    expect(await store.check(subject)).toBe('session_revoked');
    await store.revoke({ target: { kind: 'principal', tenant: 'acme', principal: 'acme-agent' }, at: 1 });
    expect(await store.check(subject)).toBe('principal_revoked');
    await store.revoke({ target: { kind: 'tenant', tenant: 'acme' }, at: 1 });
    expect(await store.check(subject)).toBe('tenant_revoked');
  });

  test('an incomplete target is refused and revokes nothing', async () => {
    const store = createMemoryRevocationStore();
    await expect(store.revoke({ target: { kind: 'session', session: '' }, at: 1 })).rejects.toMatchObject({ reason: 'bad_request' });
    expect(await store.check({ ...subject, sid: '' })).toBeNull();
  });

  test('a torn last line from a crash is dropped and later appends stay readable', async () => {
    const path = join(dataDir, REVOCATIONS_FILE);
    await writeFile(path, JSON.stringify({ target: { kind: 'session', session: 'sess-1' }, at: 1 }) + '\n{"target":{"kind":"ten');
    const store = await createFileRevocationStore({ dataDir });
    expect(await store.check(subject)).toBe('session_revoked');
    await store.revoke({ target: { kind: 'tenant', tenant: 'globex' }, at: 2 });
    await store.close();
    const reopened = await createFileRevocationStore({ dataDir });
    expect(await reopened.isTenantRevoked('globex')).toBe(true);
    await reopened.close();
  });

  test('a damaged line in the middle refuses to load rather than forget a revocation', async () => {
    const path = join(dataDir, REVOCATIONS_FILE);
    await appendFile(path, 'not json\n' + JSON.stringify({ target: { kind: 'tenant', tenant: 'acme' }, at: 1 }) + '\n');
    await expect(createFileRevocationStore({ dataDir })).rejects.toThrow(`${REVOCATIONS_FILE}:1`);
  });
});

describe('revocation TTLs and lifts (embedded)', () => {
  const clockAt = (start: number) => {
    let now = start;
    return { now: () => now, set: (ms: number) => void (now = ms) };
  };

  test('a revocation with an expiry denies until then, stops denying at it, and drops out of the list — also after a restart', async () => {
    const clock = clockAt(1_000);
    const store = await createFileRevocationStore({ dataDir, clock });
    await store.revoke({ target: { kind: 'principal', tenant: 'acme', principal: 'acme-agent' }, at: 1_000, expiresAt: 61_000, tenant: 'acme', reason: 'suspicious' });
    await store.revoke({ target: { kind: 'session', session: 'sess-1' }, at: 1_000, expiresAt: 30_000 });
    expect(await store.check(subject)).toBe('principal_revoked');
    clock.set(30_000);
    expect(await store.check({ ...subject, sub: 'acme-reader' })).toBeNull();
    expect(await store.check(subject)).toBe('principal_revoked');
    expect((await store.list(clock.now())).map((r) => r.target.kind)).toEqual(['principal']);
    clock.set(61_000);
    expect(await store.check(subject)).toBeNull();
    expect(await store.list(clock.now())).toEqual([]);
    await store.close();

    // Replayed: before the expiry it denies again (a restart does not release it early), after it not.
    const early = clockAt(60_999);
    const again = await createFileRevocationStore({ dataDir, clock: early });
    expect(await again.check(subject)).toBe('principal_revoked');
    expect(await again.list(early.now())).toEqual([{ target: { kind: 'principal', tenant: 'acme', principal: 'acme-agent' }, at: 1_000, expiresAt: 61_000, tenant: 'acme', reason: 'suspicious' }]);
    early.set(61_000);
    expect(await again.check(subject)).toBeNull();
    await again.close();
  });

  test('the latest revoke of a target decides its expiry: a permanent one replaces a TTL', async () => {
    const clock = clockAt(1_000);
    const store = createMemoryRevocationStore({ clock });
    await store.revoke({ target: { kind: 'jti', jti: 'jti-1' }, at: 1_000, expiresAt: 2_000 });
    await store.revoke({ target: { kind: 'jti', jti: 'jti-1' }, at: 1_500 });
    clock.set(5_000);
    expect(await store.check(subject)).toBe('token_revoked');
  });

  test('refuses a TTL on a tenant revocation and an expiry that is not a time, storing nothing', async () => {
    const store = await createFileRevocationStore({ dataDir });
    await expect(store.revoke({ target: { kind: 'tenant', tenant: 'acme' }, at: 1, expiresAt: 10 })).rejects.toThrow(/tenant revocation lasts until restored/);
    await expect(store.revoke({ target: { kind: 'jti', jti: 'j' }, at: 1, expiresAt: Number.NaN })).rejects.toThrow(/TTL/);
    expect(await store.list(0)).toEqual([]);
    await store.close();
  });

  test('a lift removes a principal, session or token revocation entirely, durably, and only that one', async () => {
    const clock = clockAt(1_000);
    const store = await createFileRevocationStore({ dataDir, clock });
    await store.revoke({ target: { kind: 'session', session: 'sess-1' }, at: 1, tenant: 'acme' });
    await store.revoke({ target: { kind: 'session', session: 'sess-2' }, at: 1 });
    await store.revoke({ target: { kind: 'principal', tenant: 'globex', principal: 'acme-agent' }, at: 1 });
    expect(await store.lift({ kind: 'session', session: 'sess-1' })).toEqual({ target: { kind: 'session', session: 'sess-1' }, at: 1, tenant: 'acme' });
    expect(await store.lift({ kind: 'session', session: 'sess-1' })).toBeNull();
    expect(await store.lift({ kind: 'principal', tenant: 'acme', principal: 'acme-agent' })).toBeNull();
    expect(await store.check(subject)).toBeNull();
    await store.close();

    const again = await createFileRevocationStore({ dataDir, clock });
    expect(await again.check(subject)).toBeNull();
    expect(await again.check({ ...subject, sid: 'sess-2' })).toBe('session_revoked');
    expect(await again.check({ ...subject, tid: 'globex' })).toBe('principal_revoked');
    // Lifted, then revoked again: the newer line wins on replay too.
    await again.revoke({ target: { kind: 'session', session: 'sess-1' }, at: 2 });
    await again.close();
    const third = await createFileRevocationStore({ dataDir, clock });
    expect(await third.check(subject)).toBe('session_revoked');
    await third.close();
  });

  test('refuses to start on a lift line it cannot read (a tenant, or no target)', async () => {
    for (const bad of [{ lift: { kind: 'tenant', tenant: 'acme' }, at: 1 }, { lift: { kind: 'session' }, at: 1 }]) {
      await writeFile(join(dataDir, REVOCATIONS_FILE), JSON.stringify(bad) + '\n');
      await expect(createFileRevocationStore({ dataDir })).rejects.toThrow(/not a lift entry/);
    }
  });
});
