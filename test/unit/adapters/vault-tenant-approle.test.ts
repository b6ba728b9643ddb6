import { parsePolicy, PolicyError } from '../../../src/policy/load';

/**
 * A Vault credential needs an identity to be read with: the tenant's own AppRole (Vault then enforces
 * isolation itself) or, failing that, a shared broker identity. With neither, the policy does not load.
 */
describe('policy: which Vault identity a tenant reads with', () => {
  const base = (tenant: Record<string, unknown>, vault: Record<string, unknown> = {}) => ({
    broker: { upstreams: { vault: { address: 'http://127.0.0.1:8200', ...vault } } },
    tenants: { acme: { credentials: { crm: { source: 'vault', path: 'secret/data/tenants/acme/crm' }, db: { source: 'vault-database', role: 'acme' } }, ...tenant } },
  });

  test('is refused with neither tenants.<t>.vault.approle nor a shared identity, naming the path and the credential', () => {
    let error: PolicyError | undefined;
    try {
      parsePolicy(base({}), 'policy.yaml');
    } catch (err) {
      error = err as PolicyError;
    }
    expect(error).toBeInstanceOf(PolicyError);
    expect(error!.issues.some((i) => i.startsWith('tenants.acme.vault.approle: needed by credential "crm"'))).toBe(true);
  });

  test("loads with the tenant's own AppRole (mount optional)", () => {
    const policy = parsePolicy(base({ vault: { approle: { role_id_file: '/run/acme.role_id', secret_id_file: '/run/acme.secret_id' } } }));
    expect(policy.tenants.acme!.vault!.approle.mount).toBeUndefined();
    const mounted = parsePolicy(base({ vault: { approle: { role_id_file: '/r', secret_id_file: '/s', mount: 'approle-tenants' } } }));
    expect(mounted.tenants.acme!.vault!.approle.mount).toBe('approle-tenants');
  });

  test('loads with a shared broker identity (the broker warns about it at startup)', () => {
    expect(() => parsePolicy(base({}, { auth: { token_file: '/run/vault-token' } }))).not.toThrow();
    expect(() => parsePolicy(base({}, { auth: { approle: { role_id_file: '/r', secret_id_file: '/s' } } }))).not.toThrow();
  });
});
