import { encodeVaultPath, isDynamicSecretLease, isSimpleName, leasePrefix } from '../../../adapters/vault-path';

describe('Vault paths and lease ids that go into a URL', () => {
  test('a normal KV path passes, trimmed of slashes, with each segment percent-encoded', () => {
    expect(encodeVaultPath('secret/data/tenants/acme/crm')).toBe('secret/data/tenants/acme/crm');
    expect(encodeVaultPath('/secret/data/tenants/acme/my key/')).toBe('secret/data/tenants/acme/my%20key');
  });

  test('refuses paths that the URL parser would turn into another endpoint', () => {
    for (const bad of ['secret/data/../../sys/leases/revoke-prefix/x', 'secret/./data', 'secret//data', 'secret/data?list=true', 'secret/data#x', 'secret/%2e%2e/x', 'secret\\..\\sys', '', '/']) {
      expect(encodeVaultPath(bad)).toBeUndefined();
    }
  });

  test('accepts dynamic-secret lease ids, with or without a namespace suffix, and nothing else', () => {
    expect(isDynamicSecretLease('database/creds/bh-acme/jwLZ3yuNGCWYzywjF3aWotRc')).toBe(true);
    expect(isDynamicSecretLease('team/db/creds/acme-ro/AbC123.xY9z')).toBe(true);
    for (const bad of ['../../auth/token/revoke-self', 'database/creds/../x/abc', 'auth/approle/login/abc', 'local-lease-1', 'database/creds/acme/abc?x=1', 'database/creds/acme/']) {
      expect(isDynamicSecretLease(bad)).toBe(false);
    }
  });

  test('role names are single safe segments', () => {
    expect(isSimpleName('bh-1234-acme')).toBe(true);
    for (const bad of ['..', '.', 'a/b', 'a?b', '']) expect(isSimpleName(bad)).toBe(false);
  });

  test('the loggable part of a lease id drops the random id that could revoke it', () => {
    expect(leasePrefix('database/creds/bh-acme/jwLZ3yuNGCWYzywjF3aWotRc')).toBe('database/creds/bh-acme/');
  });
});
