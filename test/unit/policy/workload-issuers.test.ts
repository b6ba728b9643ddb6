import { parsePolicy } from '../../../src/policy/load';
import { refusal, validPolicy } from './policy-fixtures';

/**
 * Policy for the jwt-bearer grant: a principal names (workload issuer, exact subject) and policy makes
 * that mapping unambiguous — one principal per pair, one source of trust per issuer string, subjects in
 * the form their issuer kind issues — so an assertion's `iss` and `sub` can never pick between two.
 */

function withWorkloads(change: (p: any) => void = () => undefined): any {
  const raw: any = validPolicy();
  raw.workload_issuers = {
    cluster: { issuer: 'https://k8s.example/cluster-1', jwks_uri: 'https://k8s.example/cluster-1/openid/v1/jwks', audience: 'bulkhead', kind: 'kubernetes' },
    spire: { issuer: 'https://spire.example', jwks_uri: 'https://spire.example/keys', audience: 'spiffe://bulkhead.example', kind: 'spiffe' },
  };
  raw.tenants.acme.principals['acme-batch'] = { workload: { issuer: 'cluster', subject: 'system:serviceaccount:acme:batch' }, tools: ['query_crm'] };
  change(raw);
  return raw;
}

it('accepts a workload-only principal and fills in the issuer defaults', () => {
  const policy = parsePolicy(withWorkloads((p) => delete p.workload_issuers.cluster.kind), 'policy.yaml');
  expect(policy.workload_issuers.cluster).toMatchObject({ kind: 'jwt', max_lifetime: 24 * 3_600_000 });
  expect(policy.tenants.acme!.principals['acme-batch']!.secret_sha256).toBeUndefined();
});

it.each([
  ['a principal with neither secret nor workload', (p: any) => (p.tenants.acme.principals['acme-batch'] = { tools: ['query_crm'] }), /acme-batch: needs secret_sha256 or workload/],
  ['an unknown workload issuer', (p: any) => (p.tenants.acme.principals['acme-batch'].workload.issuer = 'clustr'), /workload\.issuer: unknown workload issuer "clustr"/],
  [
    'two principals for one (issuer, subject), even in two tenants',
    (p: any) => (p.tenants.acme.principals['acme-batch-2'] = { workload: { issuer: 'cluster', subject: 'system:serviceaccount:acme:batch' }, tools: ['query_crm'] }),
    /already belongs to principal "acme\/acme-batch"/,
  ],
  ['a Kubernetes subject that is not a service account', (p: any) => (p.tenants.acme.principals['acme-batch'].workload.subject = 'acme:batch'), /must be a service account/],
  ['an upper-case namespace', (p: any) => (p.tenants.acme.principals['acme-batch'].workload.subject = 'system:serviceaccount:ACME:batch'), /must be a service account/],
  ['a SPIFFE subject without a path', (p: any) => (p.tenants.acme.principals['acme-batch'].workload = { issuer: 'spire', subject: 'spiffe://acme.example' }), /must be a SPIFFE ID/],
  ['a SPIFFE subject of another scheme', (p: any) => (p.tenants.acme.principals['acme-batch'].workload = { issuer: 'spire', subject: 'https://acme.example/agent' }), /must be a SPIFFE ID/],
  ['a workload issuer that is the broker itself', (p: any) => (p.workload_issuers.cluster.issuer = p.broker.issuer), /must not be the broker's own issuer/],
  ['two workload issuers with one issuer string', (p: any) => (p.workload_issuers.spire.issuer = p.workload_issuers.cluster.issuer), /already the issuer of workload_issuers "cluster"/],
  [
    'a workload issuer that is a tenant IdP',
    (p: any) => (p.tenants.acme.idp = { issuer: 'https://k8s.example/cluster-1', jwks_uri: 'https://idp.example/jwks', audience: 'bulkhead' }),
    /already the idp issuer of tenant "acme"/,
  ],
  ['a non-URL jwks_uri', (p: any) => (p.workload_issuers.cluster.jwks_uri = 'k8s.example/jwks'), /workload_issuers\.cluster\.jwks_uri/],
  ['an unknown kind', (p: any) => (p.workload_issuers.cluster.kind = 'x509'), /workload_issuers\.cluster\.kind/],
  ['an unknown key (strict)', (p: any) => (p.workload_issuers.cluster.tenant = 'acme'), /workload_issuers\.cluster/],
])('refuses %s, naming where', (_what, change, message) => {
  expect(refusal(withWorkloads(change))).toMatch(message);
});
