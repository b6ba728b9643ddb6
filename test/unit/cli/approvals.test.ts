import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../../support/broker-harness';
import { callId, expectAllow, expectDeny } from '../../support/isolation-assertions';
import { ensureBuilt, recordingCli, type CliResult } from './cli-harness';

/**
 * `bulkhead approvals list|approve|deny` through the built CLI against a real broker: an operator sees
 * one tenant's pending calls, approves one (it goes through once) and denies another; a broker refusal
 * is exit 1, a usage mistake exit 2; no secret of the run ever reaches the CLI's output.
 * The tests build on each other and run in order.
 */

jest.setTimeout(60_000);

let h: Harness;
const noDemo = mkdtempSync(join(tmpdir(), 'bulkhead-cli-approvals-'));
const recorded = recordingCli();
const email = { to: 'cfo@acme.example', subject: 'Q3', body: 'numbers attached' };
let acmeToken: string;
let acmeId: string;
let globexId: string;

beforeAll(async () => {
  ensureBuilt();
  h = await startHarness();
  acmeToken = await h.token('acme-agent', 'crm-mcp');
}, 240_000);

afterAll(async () => {
  await h?.close();
  await rm(noDemo, { recursive: true, force: true });
});

const send = (token: string, call_id = callId('cli-send')) => h.authorize('crm-mcp', { token, tool: 'send_email', arguments: email, call_id });

/** The CLI as an operator runs it: token in the environment, --data-dir without demo credentials. */
async function cli(args: string[], operatorToken: string | null = h.operatorToken): Promise<CliResult> {
  const env: Record<string, string> = operatorToken === null ? {} : { BULKHEAD_OPERATOR_TOKEN: operatorToken };
  return recorded.run([...args, '--url', h.url, '--data-dir', noDemo], { env });
}

it("approvals list shows the tenant's pending calls with their effective arguments, and only that tenant's", async () => {
  const acme = await send(acmeToken);
  const globex = await send(await h.token('globex-agent', 'crm-mcp'));
  acmeId = acme.body.approval_id;
  globexId = globex.body.approval_id;

  const result = await cli(['approvals', 'list', '--tenant', 'acme']);
  expect([result.code, result.stderr]).toEqual([0, '']);
  const listed = JSON.parse(result.stdout);
  expect(listed.tenant).toBe('acme');
  expect(listed.approvals).toEqual([expect.objectContaining({ id: acmeId, tenant: 'acme', principal: 'acme-agent', tool: 'send_email', arguments: email })]);
  expect(result.stdout).not.toContain(globexId);

  const shown = await cli(['approvals', 'show', acmeId, '--tenant', 'acme']);
  expect([shown.code, shown.stderr]).toEqual([0, '']);
  expect(JSON.parse(shown.stdout)).toMatchObject({ id: acmeId, arguments: email });
  const elsewhere = await cli(['approvals', 'show', acmeId, '--tenant', 'globex']);
  expect(elsewhere.code).toBe(1);
  expect(elsewhere.stderr).toMatch(/no pending approval .* in tenant "globex"/);
});

it('approvals approve ID lets that exact call through once', async () => {
  const result = await cli(['approvals', 'approve', acmeId]);
  expect(result.code).toBe(0);
  expect(JSON.parse(result.stdout)).toMatchObject({ id: acmeId, status: 'approved', tenant: 'acme' });
  expectAllow(h, await send(acmeToken), 'acme');
  expectDeny(h, await send(acmeToken), 403, 'approval_required');
  expect(JSON.parse((await cli(['approvals', 'list', '--tenant', 'acme'])).stdout).approvals.map((a: { id: string }) => a.id)).not.toContain(acmeId);
});

it('approvals deny ID refuses the call and takes it off the list', async () => {
  const result = await cli(['approvals', 'deny', globexId]);
  expect(result.code).toBe(0);
  expect(JSON.parse(result.stdout)).toMatchObject({ id: globexId, status: 'denied', tenant: 'globex' });
  expect(JSON.parse((await cli(['approvals', 'list', '--tenant', 'globex'])).stdout).approvals).toEqual([]);
});

it('exits 1 when the broker refuses: a decided approval, an unknown tenant, a wrong operator token', async () => {
  const again = await cli(['approvals', 'approve', acmeId]);
  expect([again.code, again.stdout]).toEqual([1, '']);
  expect(again.stderr).toMatch(/^bulkhead approvals: 404 not_found: no pending approval with that id/);
  const unknown = await cli(['approvals', 'list', '--tenant', 'umbrella']);
  expect([unknown.code, unknown.stderr]).toEqual([1, 'bulkhead approvals: 404 not_found: unknown tenant "umbrella"\n']);
  const wrongToken = await cli(['approvals', 'list', '--tenant', 'acme'], 'not-the-operator-token');
  expect(wrongToken.code).toBe(1);
  expect(wrongToken.stderr).toMatch(/401 operator_unauthenticated/);
});

it.each([
  [['approvals'], /^$/],
  [['approvals', 'list'], /^bulkhead approvals list: --tenant is required$/],
  [['approvals', 'approve'], /^bulkhead approvals approve: give the approval ID first/],
  [['approvals', 'deny', '--tenant', 'acme'], /^bulkhead approvals deny: give the approval ID first/],
  [['approvals', 'approve', '..'], /^bulkhead approvals approve: "\.\." is not an approval ID$/],
  [['approvals', 'approve', 'some-id', 'other-id'], /^bulkhead approvals approve: Unexpected argument 'other-id'/],
  [['approvals', 'frob'], /^bulkhead approvals: unknown action "frob"/],
])('bulkhead %j is a usage error (exit 2)', async (args, message) => {
  const result = await recorded.run(args);
  expect(result.code).toBe(2);
  expect(result.stderr.trimEnd()).toMatch(message);
});

it('names where it looked when there is no operator token (exit 2)', async () => {
  const result = await cli(['approvals', 'list', '--tenant', 'acme'], null);
  expect(result.code).toBe(2);
  expect(result.stderr).toBe('no operator token: pass it in a file or set BULKHEAD_OPERATOR_TOKEN\n');
});

it.each([[['approvals', '--help']], [['approvals', 'list', '--help']], [['approvals', 'approve', '--help']], [['approvals', 'deny', '-h']]])('bulkhead %j prints usage (exit 0)', async (args) => {
  const result = await recorded.run(args);
  expect([result.code, result.stderr]).toEqual([0, '']);
  expect(result.stdout).toMatch(/^Usage: bulkhead approvals list --tenant T\n/);
});

it("never prints any of the run's secrets", () => {
  const all = recorded.output();
  for (const secret of h.secrets()) expect(all.includes(secret)).toBe(false);
});
