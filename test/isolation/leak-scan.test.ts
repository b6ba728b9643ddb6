import { appendFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startHarness, type Harness } from '../support/broker-harness';
import { expectAllow } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Every isolation suite ends with findLeaks() returning nothing. That only means something if the scan
 * would have found a leak: plant one of each kind, in each place, and check it is reported.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

it('reports nothing for a clean run that issued tokens and allowed calls', async () => {
  const token = await h.token('acme-agent', 'crm-mcp');
  expectAllow(h, await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' } }), 'acme');
  expect(await findLeaks(h)).toEqual([]);
});

it('finds a secret planted raw, as base64 and as hex, in a log line, a data dir file and a deny body, and a token in the audit dir', async () => {
  const token = h.issuedTokens[0]!;
  const planted = join(h.dataDir, 'planted.txt');
  const audit = join(h.dataDir, 'audit', 'planted.jsonl');
  await h.flushLogs();
  await appendFile(h.logFile, `{"msg":"oops","k":"${Buffer.from(h.clientSecrets['globex-agent']!).toString('base64')}"}\n`);
  await writeFile(planted, Buffer.from(h.upstream.initech!).toString('hex'));
  await writeFile(audit, `{"token":"${token}"}\n`);
  h.exchanges.push({ method: 'POST', path: '/v1/authorize', status: 403, text: JSON.stringify({ decision: 'deny', message: `bad ${h.operatorToken}` }) });
  h.exchanges.push({
    method: 'POST',
    path: '/v1/authorize',
    status: 200,
    text: JSON.stringify({ decision: 'allow', tenant: 'acme', credential: { value: h.upstream.globex } }),
  });
  try {
    const findings = await findLeaks(h);
    expect(findings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^broker log line \d+ contains the client secret of globex-agent \(base64\)$/),
        'data dir file planted.txt contains the upstream credential of initech (hex)',
        'data dir file audit/planted.jsonl contains the access token #0',
        expect.stringMatching(/^response #\d+ \(POST \/v1\/authorize → 403\) contains the operator token \(raw\)$/),
        expect.stringMatching(/^response #\d+ \(POST \/v1\/authorize → 200\): allow for acme carries a credential that is not that tenant's$/),
      ]),
    );
    // Findings say where and what, never the value.
    for (const secret of h.secrets()) expect(findings.join('\n').includes(secret)).toBe(false);
  } finally {
    h.exchanges.splice(-2, 2);
    await rm(planted);
    await rm(audit);
  }
});
