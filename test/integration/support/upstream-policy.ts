import type { BaoFixture } from './bao-bootstrap';
import type { MotoFixture } from './moto-bootstrap';

/**
 * A broker-harness `overrides` that moves the harness tenants onto the real upstreams:
 *   query_crm     → credential `crm`  (source: vault, the tenant's KV v2 secret, field api_key)
 *   export_report → credential `db`   (source: vault-database, the tenant's database role), if set up
 *   send_email    → credential `mail` (source: aws, the tenant's secret via its own IAM role), no approval
 * Each tenant gets its own AppRole files. `crossWire` makes one tenant's `crm` point at another
 * tenant's KV path — the "policy or broker bug" that Vault must refuse on its own.
 */
export interface UpstreamPolicyOptions {
  vaultAddr?: string;
  awsEndpoint?: string;
  region?: string;
  timeout?: string;
  bao?: BaoFixture;
  moto?: MotoFixture;
  withDatabase?: boolean;
  crossWire?: { tenant: string; readsPathOf: string };
}

export function withUpstreams(options: UpstreamPolicyOptions): (raw: any) => void {
  return (raw) => {
    raw.broker ??= {};
    raw.broker.upstreams = {};
    if (options.vaultAddr) raw.broker.upstreams.vault = { address: options.vaultAddr, timeout: options.timeout ?? '2s' };
    if (options.awsEndpoint) raw.broker.upstreams.aws = { region: options.region ?? 'us-east-1', endpoint: options.awsEndpoint, timeout: options.timeout ?? '2s' };
    for (const [id, tenant] of Object.entries<any>(raw.tenants)) {
      const b = options.bao?.tenants[id];
      if (b) {
        tenant.vault = { approle: { role_id_file: b.roleIdFile, secret_id_file: b.secretIdFile } };
        const path = options.crossWire?.tenant === id ? options.bao!.tenants[options.crossWire.readsPathOf]!.kvPath : b.kvPath;
        tenant.credentials.crm = { source: 'vault', path, field: 'api_key' };
        if (options.withDatabase) {
          tenant.credentials.db = { source: 'vault-database', role: b.dbRole };
          tenant.tools.export_report.credential = 'db';
        }
      }
      const m = options.moto?.tenants[id];
      if (m) {
        tenant.credentials.mail = { source: 'aws', secret_id: m.secretId, field: 'api_key', role_arn: m.roleArn };
        tenant.tools.send_email = { credential: 'mail' };
      }
    }
  };
}
