import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { certificateAuthorityFor } from '../../rotation/broker-tls';
import type { CertificateAuthority } from '../../rotation/certificate-authority';
import { issueClientCertificate, renewCertificateFiles, writeCertificateFiles, CERT_FILES, type ClientIdentity } from '../../rotation/client-certificates';
import { CA_FILE, TLS_DIR } from '../../rotation/internal-ca';
import { identityUri } from '../../rotation/tls-identity';
import { systemClock } from '../clock';
import { loadOrCreateMasterKey } from '../crypto/master-key';
import { parseDuration } from '../policy/duration';
import type { Policy } from '../policy/schema';
import { loadConfig } from './load-config';
import { parseVerb, stateOptions } from './options';
import { UsageError } from './usage-error';

export const CERTS_HELP = `Usage: bulkhead certs issue (--server ID | --operator ID) --out DIR --config FILE [--data-dir DIR] [--ttl 24h]
       bulkhead certs renew --out DIR --config FILE [--data-dir DIR] [--ttl 24h] [--force]

Client certificates for mTLS (broker.tls.mode internal-ca or vault-pki). Each is for one identity, in its
SAN URI: spiffe://bulkhead/server/<id> for an MCP server (accepted by /v1/authorize instead of its key)
or spiffe://bulkhead/operator/<id> for an operator (accepted by the operator API). The id must be in the
policy's servers or operators.

  issue   writes DIR/key.pem (0600), DIR/cert.pem and DIR/ca.pem (the CA that verifies the broker)
  renew   renews DIR's certificate in place when two thirds of its lifetime have passed (or --force, or
          when key.pem and cert.pem do not match, or the CA changed); run it from a timer. cert.pem is
          written last, so a process that reloads when it changes sees a matching pair.

  --config FILE     policy file (its broker.tls and broker.rotation.certificate are used)
  --data-dir DIR    where the internal CA lives (default ./.bulkhead, or $BULKHEAD_DATA_DIR)
  --ttl DURATION    certificate lifetime (default broker.rotation.certificate)
  --force           renew even if not due

vault-pki reads the token from broker.upstreams.vault.auth.token_file or $VAULT_TOKEN.
Clients of an HTTPS broker trust it with NODE_EXTRA_CA_CERTS=DIR/ca.pem (or DATA_DIR/tls/ca.pem).`;

const certsOptions = {
  ...stateOptions,
  server: { type: 'string' },
  operator: { type: 'string' },
  out: { type: 'string' },
  ttl: { type: 'string' },
  force: { type: 'boolean' },
} as const;

export async function certs(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') return help();
  if (action !== 'issue' && action !== 'renew') throw new UsageError(`bulkhead certs: unknown action "${action}" (see bulkhead certs --help)`);
  const verb = `certs ${action}`;
  const { values } = parseVerb(verb, rest, certsOptions);
  if (values.help) return help();
  if (!values.out) throw new UsageError(`bulkhead ${verb}: --out DIR is required`);
  if (!values.config) throw new UsageError(`bulkhead ${verb}: --config FILE is required (it says which CA: broker.tls.mode)`);
  const { policy, dataDir } = loadConfig(values);
  const ca = await authorityOf(policy!, values.config, dataDir);
  const ttlMs = values.ttl === undefined ? policy!.broker.rotation.certificate : parseDuration(values.ttl);
  if (!ttlMs || ttlMs <= 0) throw new UsageError(`bulkhead ${verb}: --ttl must be a duration such as "24h", got "${values.ttl}"`);
  const out = resolve(values.out);

  if (action === 'issue') {
    if (values.force) throw new UsageError('bulkhead certs issue: --force is for renew');
    const identity = identityOf(values, policy!, values.config);
    const issued = await issueClientCertificate(ca, identity, ttlMs);
    await writeCertificateFiles(out, issued);
    print({ identity: identityUri(identity.role, identity.id), serial: issued.serial, expires_at: new Date(issued.expiresAt).toISOString(), files: Object.values(CERT_FILES).map((f) => join(out, f)) });
    return 0;
  }
  if (values.server || values.operator) throw new UsageError('bulkhead certs renew: the identity comes from DIR/cert.pem; drop --server/--operator');
  const result = await renewCertificateFiles({ ca, dir: out, clock: systemClock, ttlMs, force: values.force });
  print({
    renewed: result.renewed,
    ...(result.reason ? { reason: result.reason } : {}),
    identity: identityUri(result.identity.role, result.identity.id),
    serial: result.serial,
    expires_at: new Date(result.expiresAt).toISOString(),
    renew_at: new Date(result.renewAt).toISOString(),
  });
  return 0;
}

function identityOf(values: { server?: string; operator?: string }, policy: Policy, file: string): ClientIdentity {
  if ((values.server === undefined) === (values.operator === undefined)) throw new UsageError('bulkhead certs issue: give exactly one of --server ID, --operator ID');
  const identity: ClientIdentity = values.server !== undefined ? { role: 'server', id: values.server } : { role: 'operator', id: values.operator! };
  const table = identity.role === 'server' ? policy.servers : policy.operators;
  if (!Object.prototype.hasOwnProperty.call(table, identity.id)) throw new UsageError(`${file}: ${identity.role}s.${identity.id}: no such ${identity.role === 'server' ? 'MCP server' : 'operator'} in the policy`);
  return identity;
}

async function authorityOf(policy: Policy, file: string, dataDir: string): Promise<CertificateAuthority> {
  const mode = policy.broker.tls.mode;
  if (mode === 'off') throw new UsageError(`${file}: broker.tls.mode is "off"; client certificates need internal-ca or vault-pki`);
  if (mode === 'internal-ca') {
    // Never create a CA from here: with a mistyped --data-dir, a fresh CA would issue certificates the
    // broker does not trust. The broker creates it on its first start.
    await access(join(dataDir, TLS_DIR, CA_FILE)).catch(() => {
      throw new UsageError(`${join(dataDir, TLS_DIR, CA_FILE)}: no internal CA here (start the broker once with this --data-dir, or pass the right one)`);
    });
  }
  let ca: CertificateAuthority | null;
  try {
    ca = certificateAuthorityFor({ policy, dataDir, masterKey: mode === 'internal-ca' ? await loadOrCreateMasterKey(dataDir) : Buffer.alloc(0), clock: systemClock });
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
  await ca!.init();
  return ca!;
}

function help(): number {
  process.stdout.write(CERTS_HELP + '\n');
  return 0;
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
