import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MASTER_KEY_FILE } from '../../../src/crypto/master-key';
import { startHarness, type Harness } from '../../support/broker-harness';
import { callId, claimsOf, expectAllow, expectDeny } from '../../support/isolation-assertions';
import { findLeaks } from '../../support/leak-scan';
import { ensureBuilt, recordingCli } from './cli-harness';

/**
 * `bulkhead secret list|delete|shred` through the built CLI, on the data dir of a running broker: the
 * broker sees each change on its next call. Shredding one tenant makes its calls fail (503
 * upstream_unavailable) while the other tenants carry on; no secret value ever reaches the CLI's output.
 * The tests build on each other and run in order.
 */

jest.setTimeout(60_000);

let h: Harness;
const empty = mkdtempSync(join(tmpdir(), 'bulkhead-cli-secret-'));
const recorded = recordingCli();
const extra = { acmeMail: `acme-mail-${randomBytes(16).toString('hex')}`, initechMail: `initech-mail-${randomBytes(16).toString('hex')}` };

// The tenants `secret set` may write for: the harness's (a policy file with just their names).
const policyFile = join(empty, 'tenants.json');
writeFileSync(policyFile, JSON.stringify({ tenants: { acme: {}, globex: {}, initech: {} } }));

beforeAll(async () => {
  ensureBuilt();
  h = await startHarness();
}, 240_000);

afterAll(async () => {
  await h?.close();
  await rm(empty, { recursive: true, force: true });
});

const secret = (args: string[], stdin?: string) => recorded.run(['secret', ...args, '--data-dir', h.dataDir], { stdin });

async function query(tenant: string) {
  const token = await h.token(`${tenant}-agent`, 'crm-mcp');
  return h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${claimsOf(token).tid}/x` }, call_id: callId(`secret-cli-${tenant}`) });
}

it('secret list prints the names, never the values', async () => {
  expect((await secret(['set', '--tenant', 'acme', '--name', 'mail', '--config', policyFile], `${extra.acmeMail}\n`)).code).toBe(0);
  expect((await secret(['set', '--tenant', 'initech', '--name', 'mail', '--config', policyFile], `${extra.initechMail}\n`)).code).toBe(0);
  const acme = await secret(['list', '--tenant', 'acme']);
  expect(acme).toEqual({ code: 0, stdout: 'crm\nmail\n', stderr: '' });
  expect((await secret(['list', '--tenant', 'globex'])).stdout).toBe('crm\n');
});

it('secret delete removes one secret; the running broker sees it on the next call', async () => {
  const deleted = await secret(['delete', '--tenant', 'initech', '--name', 'crm']);
  expect(deleted.code).toBe(0);
  expect(deleted.stdout).toBe(`deleted secret "crm" of tenant "initech" from ${h.dataDir}\n`);
  expect((await secret(['list', '--tenant', 'initech'])).stdout).toBe('mail\n');
  expectDeny(h, await query('initech'), 503, 'upstream_unavailable');
  expectAllow(h, await query('acme'), 'acme');

  const again = await secret(['delete', '--tenant', 'initech', '--name', 'crm']);
  expect([again.code, again.stdout]).toEqual([1, '']);
  expect(again.stderr).toBe(`bulkhead secret: tenant "initech" has no secret "crm" in ${h.dataDir}\n`);
});

it('secret shred without --yes says what it would do, exits 2 and changes nothing', async () => {
  const result = await secret(['shred', '--tenant', 'acme']);
  expect([result.code, result.stdout]).toEqual([2, '']);
  expect(result.stderr).toBe(
    `bulkhead secret shred: this would delete tenant "acme"'s data key in ${h.dataDir}: its 2 secret(s) (crm, mail) could never be read again from this data dir. Add --yes to do it.\n`,
  );
  expectAllow(h, await query('acme'), 'acme');
});

it("secret shred --yes makes the tenant's calls fail (503) while the other tenants keep working", async () => {
  const result = await secret(['shred', '--tenant', 'acme', '--yes']);
  expect([result.code, result.stderr]).toEqual([0, '']);
  expect(result.stdout).toMatch(/^deleted tenant "acme"'s data key in .*: its 2 secret\(s\) \(crm, mail\) can no longer be read from this data dir\n$/);
  expectDeny(h, await query('acme'), 503, 'upstream_unavailable');
  expectAllow(h, await query('globex'), 'globex');
  expect((await secret(['list', '--tenant', 'globex'])).stdout).toBe('crm\n');
  const acme = await secret(['list', '--tenant', 'acme']);
  expect(acme).toEqual({ code: 0, stdout: '', stderr: `tenant "acme" has no secrets in ${h.dataDir}\n` });
});

it.each([
  [['list'], /^bulkhead secret list: --tenant is required$/],
  [['delete', '--tenant', 'acme'], /^bulkhead secret delete: --name is required$/],
  [['delete', '--tenant', 'acme', '--name', 'a..b'], /^bulkhead secret delete: --name must not contain "\.\."$/],
  [['shred', '--tenant', '../globex', '--yes'], /^bulkhead secret shred: --tenant must be 1-64 characters/],
  [['shred', '--tenant', 'acme', '--force'], /^bulkhead secret shred: Unknown option '--force'/],
])('bulkhead secret %j is a usage error (exit 2)', async (args, message) => {
  const result = await secret(args);
  expect([result.code, result.stdout]).toEqual([2, '']);
  expect(result.stderr.trimEnd()).toMatch(message);
});

it('secret set refuses a tenant the policy does not have (a typo), with or without --config', async () => {
  const typo = await secret(['set', '--tenant', 'acmee', '--name', 'crm', '--config', policyFile], 'value\n');
  expect([typo.code, typo.stdout]).toEqual([2, '']);
  expect(typo.stderr).toBe(`bulkhead secret set: tenant "acmee" is not in ${policyFile} (tenants: acme, globex, initech)\n`);
  // Without --config the tenants are the demo policy's: initech is not one of them.
  const demo = await secret(['set', '--tenant', 'initech', '--name', 'crm'], 'value\n');
  expect(demo.code).toBe(2);
  expect(demo.stderr).toBe('bulkhead secret set: tenant "initech" is not in the demo policy (no --config) (tenants: acme, globex)\n');
  for (const tenant of ['ACME', 'acme.', 'Acme']) expect((await secret(['set', '--tenant', tenant, '--name', 'crm', '--config', policyFile], 'v\n')).code).toBe(2);
  expect((await secret(['list', '--tenant', 'acmee'])).stdout).toBe('');
});

it('refuses a data dir with no store in it (exit 2) rather than creating one', async () => {
  for (const action of [['list', '--tenant', 'acme'], ['shred', '--tenant', 'acme', '--yes']]) {
    const result = await recorded.run(['secret', ...action, '--data-dir', empty]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`${empty}: no embedded store here (no ${MASTER_KEY_FILE}); check --data-dir\n`);
  }
  expect(existsSync(join(empty, MASTER_KEY_FILE))).toBe(false);
});

it('prints usage for every action (exit 0)', async () => {
  for (const action of ['list', 'delete', 'shred']) {
    const result = await recorded.run(['secret', action, '--help']);
    expect([result.code, result.stderr]).toEqual([0, '']);
    expect(result.stdout).toContain(`bulkhead secret ${action} --tenant T`);
  }
});

it('no secret value reaches the CLI output, the broker log, its responses or the data dir', async () => {
  const all = recorded.output();
  for (const value of [...h.secrets(), ...Object.values(extra)]) expect(all.includes(value)).toBe(false);
  expect(await findLeaks(h, Object.entries(extra).map(([label, value]) => ({ label, value })))).toEqual([]);
});
