import { createRevocationMirror } from '../../../src/state/revocation-mirror';

/**
 * A replica hears of revocation changes from three places (its own revoke, pub/sub, a PostgreSQL
 * re-read), possibly twice and out of order; the newest version of each key must win every time.
 */
const subject = { tid: 'acme', sub: 'acme-agent', sid: 's1', jti: 'j1', iat: 1000 };

describe('revocation mirror', () => {
  test('a stale restore arriving after a newer revoke does not lift the revocation', () => {
    const mirror = createRevocationMirror({ now: () => Date.now() });
    expect(mirror.apply({ key: 'tenant:acme', active: true, version: 3 })).toBe(true);
    // Version 2 (an older restore) replayed late by a resync must not win.
    expect(mirror.apply({ key: 'tenant:acme', active: false, version: 2 })).toBe(false);
    expect(mirror.check(subject)).toBe('tenant_revoked');
    expect(mirror.apply({ key: 'tenant:acme', active: false, version: 4 })).toBe(true);
    expect(mirror.check(subject)).toBeNull();
    expect(mirror.isTenantRevoked('acme')).toBe(false);
  });

  test('the same change applied twice is a no-op', () => {
    const mirror = createRevocationMirror({ now: () => Date.now() });
    expect(mirror.apply({ key: 'session:s1', active: true, version: 1 })).toBe(true);
    expect(mirror.apply({ key: 'session:s1', active: true, version: 1 })).toBe(false);
    expect(mirror.size()).toBe(1);
  });

  test('reasons follow the precedence tenant, principal, session, token, and stay per tenant', () => {
    const mirror = createRevocationMirror({ now: () => Date.now() });
    mirror.apply({ key: 'jti:j1', active: true, version: 1 });
    expect(mirror.check(subject)).toBe('token_revoked');
    mirror.apply({ key: 'session:s1', active: true, version: 1 });
    expect(mirror.check(subject)).toBe('session_revoked');
    mirror.apply({ key: 'principal:globex/acme-agent', active: true, version: 1 });
    expect(mirror.check(subject)).toBe('session_revoked');
    mirror.apply({ key: 'principal:acme/acme-agent', active: true, version: 1 });
    expect(mirror.check(subject)).toBe('principal_revoked');
    mirror.apply({ key: 'tenant:acme', active: true, version: 1 });
    expect(mirror.check(subject)).toBe('tenant_revoked');
    expect(mirror.check({ tid: 'globex', sub: 'other', sid: 's2', jti: 'j2', iat: 1000 })).toBeNull();
  });
});

describe('expiry in the mirror', () => {
  it('an active change with an expiry denies until then on this replica\'s clock, and is not counted after', () => {
    let now = 1_000;
    const mirror = createRevocationMirror({ now: () => now });
    mirror.apply({ key: 'session:s1', active: true, version: 1, expiresAt: 2_000 });
    const subject = { tid: 'acme', sub: 'p', sid: 's1', jti: 'j', iat: 1 };
    expect(mirror.check(subject)).toBe('session_revoked');
    expect(mirror.size()).toBe(1);
    now = 2_000;
    expect(mirror.check(subject)).toBeNull();
    expect(mirror.size()).toBe(0);
    // A newer version without an expiry (a permanent re-revoke) denies again.
    mirror.apply({ key: 'session:s1', active: true, version: 2 });
    expect(mirror.check(subject)).toBe('session_revoked');
    // A lift (inactive) ends it.
    mirror.apply({ key: 'session:s1', active: false, version: 3 });
    expect(mirror.check(subject)).toBeNull();
  });
});
