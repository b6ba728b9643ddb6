import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { needlesFor, type Needle } from '../../src/selftest/leak-needles';
import type { Harness } from './broker-harness';

/**
 * The "secrets never leave their lane" check, run at the end of a suite that exercised the broker:
 * every secret of the run (client secrets, server keys, the operator token, every tenant's upstream
 * value) and every access token handed out is searched for, raw and as base64/base64url/hex, in every
 * log line, every file under the data dir, every response body and the /metrics output.
 *
 * Two answers legitimately carry one of them, and only in one field: an allow carries its own tenant's
 * credential in `credential.value` (to the authenticated MCP server), and a token answer carries its
 * `access_token`. Those two fields are taken out, after checking the credential is the right tenant's,
 * and the rest of those bodies is searched like every other.
 *
 * Findings name where and what kind of value was found, never the value itself.
 */

function needlesOf(h: Harness, extra: Array<{ label: string; value: string }>): Needle[] {
  const named: Array<{ label: string; value: string }> = [
    ...Object.entries(h.clientSecrets).map(([id, value]) => ({ label: `client secret of ${id}`, value })),
    ...Object.entries(h.serverKeys).map(([id, value]) => ({ label: `server key of ${id}`, value })),
    { label: 'operator token', value: h.operatorToken },
    ...Object.entries(h.upstream).map(([tenant, value]) => ({ label: `upstream credential of ${tenant}`, value })),
    ...extra,
  ];
  // Anything secrets() knows that the named fields above missed is still searched for.
  const known = new Set(named.map((n) => n.value));
  h.secrets().forEach((value, i) => known.has(value) || named.push({ label: `harness secret #${i}`, value }));
  const needles = named.flatMap((n) => needlesFor(n.label, n.value));
  h.issuedTokens.forEach((token, i) => {
    needles.push({ label: `access token #${i}`, bytes: Buffer.from(token, 'utf8') });
    // A logged signature alone would let nobody forge, but it still means tokens reach the log.
    needles.push({ label: `signature of access token #${i}`, bytes: Buffer.from(token.split('.')[2]!, 'utf8') });
  });
  return needles;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/** The part of a recorded body that is searched: the body minus the one field it may carry. */
function searchableBody(h: Harness, path: string, status: number, text: string, findings: string[], where: string): string {
  if (status !== 200 || (path !== '/v1/authorize' && path !== '/v1/token')) return text;
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    return text;
  }
  if (path === '/v1/token') {
    delete body.access_token;
    return JSON.stringify(body);
  }
  if (body?.decision === 'allow') {
    if (body.credential?.value !== h.upstream[body.tenant]) findings.push(`${where}: allow for ${body.tenant} carries a credential that is not that tenant's`);
    delete body.credential.value;
  }
  return JSON.stringify(body);
}

export async function findLeaks(h: Harness, extra: Array<{ label: string; value: string }> = []): Promise<string[]> {
  await h.flushLogs();
  const needles = needlesOf(h, extra);
  const findings: string[] = [];
  const search = (where: string, haystack: Buffer) => {
    for (const needle of needles) if (haystack.includes(needle.bytes)) findings.push(`${where} contains the ${needle.label}`);
  };

  const logLines = (await readFile(h.logFile, 'utf8')).split('\n');
  logLines.forEach((line, i) => search(`broker log line ${i + 1}`, Buffer.from(line, 'utf8')));
  for (const file of await filesUnder(h.dataDir)) {
    if (file === h.logFile) continue;
    search(`data dir file ${relative(h.dataDir, file)}`, await readFile(file));
  }
  const metrics = await fetch(`${h.url}/metrics`).then((r) => r.text());
  search('GET /metrics', Buffer.from(metrics, 'utf8'));
  h.exchanges.forEach((x, i) => {
    const where = `response #${i} (${x.method} ${x.path.split('?')[0]} → ${x.status})`;
    search(where, Buffer.from(searchableBody(h, x.path, x.status, x.text, findings, where), 'utf8'));
  });
  return findings;
}

/** Evidence that the scan had something to scan: a scan of nothing finds nothing. */
export async function scanScope(h: Harness): Promise<{ logLines: number; files: number; bodies: number; tokens: number }> {
  await h.flushLogs();
  const log = await readFile(h.logFile, 'utf8');
  return { logLines: log.split('\n').filter(Boolean).length, files: (await filesUnder(h.dataDir)).length, bodies: h.exchanges.length, tokens: h.issuedTokens.length };
}
