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
