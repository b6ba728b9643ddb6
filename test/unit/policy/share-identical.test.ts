import { parsePolicy } from '../../../src/policy/load';

const digest = (c: string) => c.repeat(64);

function twoTenants() {
  const tenant = (t: string, secret: string) => ({
    principals: { agent: { secret_sha256: digest(secret), tools: ['query_crm', 'export_report'] } },
    tools: {
      query_crm: { credential: 'crm', resource: { arg: 'path', prefix: `${t}/` } },
      export_report: { credential: 'crm', max_records: 1000 },
    },
    credentials: { crm: { source: 'local', name: 'crm' } },
  });
  return parsePolicy({
    servers: { 'crm-mcp': { key_sha256: digest('c'), tools: ['query_crm', 'export_report'] } },
    tenants: { acme: tenant('acme', 'a'), globex: tenant('globex', 'b') },
  });
}

test('identical tool settings and tool lists of different tenants are one frozen object', () => {
  const policy = twoTenants();
  const [acme, globex] = [policy.tenants.acme!, policy.tenants.globex!];
  expect(acme.tools.export_report).toBe(globex.tools.export_report);
  expect(acme.principals.agent!.tools).toBe(globex.principals.agent!.tools);
  expect(acme.principals.agent!.tools).toBe(policy.servers['crm-mcp']!.tools);
  expect(acme.quotas).toBe(globex.quotas);
  expect(Object.isFrozen(acme.tools.export_report)).toBe(true);
});

test('settings that differ (a tenant prefix) stay apart, and tenant, principal and credential objects are never shared', () => {
  const policy = twoTenants();
  const [acme, globex] = [policy.tenants.acme!, policy.tenants.globex!];
  expect(acme.tools.query_crm!.resource!.prefix).toBe('acme/');
  expect(globex.tools.query_crm!.resource!.prefix).toBe('globex/');
  expect(acme.principals.agent).not.toBe(globex.principals.agent);
  expect(acme.credentials.crm).not.toBe(globex.credentials.crm);
  expect(acme.tools).not.toBe(globex.tools);
});
