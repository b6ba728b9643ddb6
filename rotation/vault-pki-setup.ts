import { vaultRequest, type VaultConnection } from './vault-pki';

/**
 * One-time setup of OpenBao's PKI engine for Bulkhead, idempotent so it can run on every deploy (and
 * before every test): mount the engine if absent, generate an internal root CA if it has none
 * (`pki/root/generate/internal`; the root key never leaves OpenBao), and write the two roles the broker
 * issues from. Needs a token allowed to mount engines and write roles — an operator's, not the broker's
 * (the broker only needs `<mount>/issue/*` and `<mount>/cert/ca_chain`).
 */

export interface VaultPkiSetup extends VaultConnection {
  mount?: string;
  role?: string;
  /** Longest certificate the roles will issue (default 720h). */
  maxTtl?: string;
  /** Root CA lifetime when one is generated (default 87600h). */
  rootTtl?: string;
  commonName?: string;
}

export async function bootstrapVaultPki(setup: VaultPkiSetup): Promise<{ mounted: boolean; rootGenerated: boolean }> {
  const mount = (setup.mount ?? 'pki').replace(/^\/+|\/+$/g, '');
  const role = setup.role ?? 'bulkhead';
  const rootTtl = setup.rootTtl ?? '87600h';
  const maxTtl = setup.maxTtl ?? '720h';

  const existing = await vaultRequest(setup, 'GET', `sys/mounts/${mount}`).catch((err: Error) => {
    // OpenBao answers 400 "No secret engine mount at …" for an absent mount (older Vaults: "no matching
    // mount"); anything else is a real failure.
    if (/no (secret engine|matching) mount/i.test(err.message)) return null;
    throw err;
  });
  let mounted = false;
  if (!existing) {
    await vaultRequest(setup, 'POST', `sys/mounts/${mount}`, { type: 'pki', config: { max_lease_ttl: rootTtl } });
    mounted = true;
  } else if ((existing.data?.type ?? existing.type) !== 'pki') {
    throw new Error(`vault pki: mount "${mount}" exists but is not a PKI engine`);
  }

  const ca = await vaultRequest(setup, 'GET', `${mount}/cert/ca_chain`).catch(() => null);
  let rootGenerated = false;
  if (typeof ca?.data?.ca_chain !== 'string' || !ca.data.ca_chain.includes('BEGIN CERTIFICATE')) {
    await vaultRequest(setup, 'POST', `${mount}/root/generate/internal`, {
      common_name: setup.commonName ?? 'Bulkhead PKI root',
      ttl: rootTtl,
      key_type: 'ec',
      key_bits: 256,
    });
    rootGenerated = true;
  }

  const common = {
    key_type: 'ec',
    key_bits: 256,
    max_ttl: maxTtl,
    // Short-lived certificates expire instead of being revoked: no need to store each one.
    no_store: true,
    not_before_duration: '30s',
    allow_any_name: true,
    enforce_hostnames: false,
    require_cn: false,
  };
  await vaultRequest(setup, 'POST', `${mount}/roles/${role}-server`, { ...common, server_flag: true, client_flag: false, allow_ip_sans: true, allow_localhost: true, allowed_uri_sans: [] });
  await vaultRequest(setup, 'POST', `${mount}/roles/${role}-client`, {
    ...common,
    server_flag: false,
    client_flag: true,
    allow_ip_sans: false,
    allowed_uri_sans: ['spiffe://bulkhead/server/*', 'spiffe://bulkhead/operator/*'],
  });
  return { mounted, rootGenerated };
}
