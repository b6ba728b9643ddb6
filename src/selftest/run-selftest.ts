import { randomBytes } from 'node:crypto';
import { formatTable } from '../cli/table';
import { canonicalJson, sha256Hex } from '../crypto/hash';
import { CANARY_TOOLS, type CanaryFile } from './canary-file';
import { findNeedles, needlesFor, type Needle } from './leak-needles';
import { createSelftestClient, type Answer } from './selftest-client';

/**
 * `bulkhead selftest`: a containment proof run against a live deployment (every replica URL), using
 * only the two canary tenants the policy declares and the public HTTP API, as an attacker with a valid
 * canary token, a canary MCP server key and the operator token would. Each check states what a
 * contained deployment answers and what this one answered; the run holds only if every check held.
 */
/** The fields of an audit record the selftest reads. */
interface AuditedCall {
  call_id?: string;
  decision?: string;
  tool?: string;
  arguments_mac?: string;
}

export interface SelftestOptions {
  replicas: string[];
  canaries: CanaryFile;
  operatorToken: string;
  /** Seconds to wait past a short token's expiry before presenting it (covers the broker's skew). */
  expiryWaitSeconds?: number;
}

export interface CheckResult {
  check: string;
  replica: string;
  expected: string;
  observed: string;
  ok: boolean;
  ms: number;
}

export interface LaneReport {
  tenant: string;
  caller: string;
  capability: string;
  credential_mode: string;
  quota_owner: string;
  typed_denial_seen: string[];
}

export interface SelftestReport {
  ok: boolean;
  run_id: string;
  started_at: string;
  finished_at: string;
  replicas: string[];
  checks: CheckResult[];
  lanes: LaneReport[];
  /** SHA-256 of the canonical JSON of this report without `digest`. */
  digest: string;
}

type Canary = CanaryFile['tenants'][number];

export async function runSelftest(options: SelftestOptions): Promise<SelftestReport> {
  const started = new Date();
  const runId = randomBytes(4).toString('hex');
  const http = createSelftestClient();
  const checks: CheckResult[] = [];
  const { replicas, operatorToken } = options;
  const [a, b] = options.canaries.tenants;
  const [server, otherServer] = options.canaries.servers;
  const denialsSeen = new Map<string, Set<string>>([[a.id, new Set()], [b.id, new Set()]]);
  const attempts = new Map<string, string>(); // call id → tenant whose token made it (verified tokens only)
  const tokens: string[] = [];
  let calls = 0;
  const callId = () => `selftest-${runId}-${++calls}`;
  const last = replicas[replicas.length - 1]!;

  async function check(name: string, replica: string, expected: string, run: () => Promise<{ observed: string; ok: boolean }>): Promise<boolean> {
    const t0 = performance.now();
    let outcome: { observed: string; ok: boolean };
    try {
      outcome = await run();
    } catch (err) {
      outcome = { observed: `error: ${(err as Error).message}`, ok: false };
    }
    checks.push({ check: name, replica, expected, ...outcome, ms: Math.round(performance.now() - t0) });
    return outcome.ok;
  }

  async function token(replica: string, canary: Canary, audience: string, extra: Record<string, string> = {}): Promise<string> {
    const answer = await http.request(replica, 'POST', '/v1/token', { form: { grant_type: 'client_credentials', client_id: canary.principal, client_secret: canary.secret, audience, ...extra } });
    if (answer.status !== 200 || typeof answer.body?.access_token !== 'string') throw new Error(`token for ${canary.principal}: ${answer.status} ${answer.body?.error ?? ''}`);
    tokens.push(answer.body.access_token);
    return answer.body.access_token;
  }

  const authorize = (replica: string, key: string, body: Record<string, unknown>) => http.request(replica, 'POST', '/v1/authorize', { json: body, bearer: key });
  const describe = (answer: Answer) => (answer.body?.decision === 'allow' ? `allow (${answer.body.tenant})` : `${answer.status} ${answer.body?.reason ?? answer.body?.error ?? 'no reason'}`);

  /**
   * A call that must be denied with `reason`; nothing allowed, no credential in the answer. `owner` is
   * the canary whose verified token made it: its stream must then hold the attempt (`attributed`).
   */
  async function expectDenied(name: string, replica: string, owner: Canary | null, reason: string, body: Record<string, unknown>, key = server.key, attributed = owner !== null) {
    const id = callId();
    if (owner && attributed) attempts.set(id, owner.id);
    await check(name, replica, `deny ${reason}`, async () => {
      const answer = await authorize(replica, key, { ...body, call_id: id });
      if (owner && answer.body?.reason) denialsSeen.get(owner.id)!.add(answer.body.reason);
      return { observed: describe(answer), ok: answer.body?.decision === 'deny' && answer.body?.reason === reason && answer.body?.credential === undefined };
    });
  }

  /** A call that must be allowed with the caller's own canary secret, never the other's; completed at once. */
  async function expectOwnLane(name: string, replica: string, canary: Canary, tokenValue: string, tool: string = CANARY_TOOLS.read, records?: number) {
    const id = callId();
    attempts.set(id, canary.id);
    const other = canary === a ? b : a;
    return check(name, replica, `allow ${canary.id} with its own canary credential`, async () => {
      const answer = await authorize(replica, server.key, { token: tokenValue, tool, arguments: tool === CANARY_TOOLS.read ? { path: `${canary.id}/selftest` } : {}, call_id: id });
      const value = answer.body?.credential?.value;
      const ok = answer.body?.decision === 'allow' && answer.body.tenant === canary.id && value === canary.credential_value && value !== other.credential_value;
      if (answer.body?.decision === 'allow') await http.request(replica, 'POST', '/v1/complete', { json: { call_id: id, status: 'success', ...(records === undefined ? {} : { records }) }, bearer: server.key });
      return { observed: answer.body?.decision === 'allow' ? `allow ${answer.body.tenant}, ${value === canary.credential_value ? 'own' : value === other.credential_value ? "the OTHER canary's" : 'a foreign'} credential` : describe(answer), ok };
    });
  }

  const operator = (replica: string, method: 'GET' | 'POST', path: string, json?: unknown) => http.request(replica, method, path, { json, bearer: operatorToken });

  // Discovery: every replica is up and serves the broker's metadata and keys.
  for (const replica of replicas) {
    await check('discovery: ready, RFC 8414 metadata, JWKS', replica, '200 ready, issuer, ≥1 key', async () => {
      const [ready, meta, jwks] = await Promise.all([http.request(replica, 'GET', '/readyz'), http.request(replica, 'GET', '/.well-known/oauth-authorization-server'), http.request(replica, 'GET', '/.well-known/jwks.json')]);
      const keys = Array.isArray(jwks.body?.keys) ? jwks.body.keys.length : 0;
      return { observed: `${ready.status} ${ready.body?.status ?? ''}, issuer ${meta.body?.issuer ? 'set' : 'missing'}, ${keys} keys`, ok: ready.status === 200 && typeof meta.body?.issuer === 'string' && keys > 0 };
    });
  }
  const auditHeads = new Map<string, number>();
  for (const canary of [a, b]) auditHeads.set(canary.id, (await operator(replicas[0]!, 'GET', `/v1/audit/verify?tenant=${canary.id}`)).body?.events ?? 0);

  const tokenA = await token(replicas[0]!, a, server.id);
  let tokenB = await token(last, b, server.id);
  const tokenAOther = await token(replicas[0]!, a, otherServer.id);
  const shortA = await token(last, a, server.id, { expires_in: '1' });
  const shortExpiry = Date.now() + 1000;

  for (const replica of replicas) {
    // Manifest filtering: each canary sees its own tools, named under its own tenant.
    for (const [canary, t] of [[a, tokenA], [b, tokenB]] as const) {
      await check(`manifest: ${canary.id} sees its own tools only`, replica, `${canary.id}: ${CANARY_TOOLS.export}, ${CANARY_TOOLS.read}`, async () => {
        const answer = await http.request(replica, 'POST', '/v1/manifest', { json: { token: t }, bearer: server.key });
        const tools = Array.isArray(answer.body?.tools) ? [...answer.body.tools].sort().join(', ') : describe(answer);
        return { observed: `${answer.body?.tenant ?? '?'}: ${tools}`, ok: answer.body?.tenant === canary.id && tools === `${CANARY_TOOLS.export}, ${CANARY_TOOLS.read}` };
      });
    }
    // Credential lanes: each canary's call resolves that canary's secret, on every replica.
    await expectOwnLane(`credential lane: ${a.id}`, replica, a, tokenA);
    await expectOwnLane(`credential lane: ${b.id}`, replica, b, tokenB);
  }

  // The neighbour's resources, with the path tricks an injected agent would try.
  const tricks = [`${b.id}/x`, `${a.id}/../${b.id}/x`, `${a.id}/%2e%2e/${b.id}/x`, `${a.id}%2f..%2f${b.id}/x`, `/${b.id}/x`, `${a.id}/./../../${b.id}/x`, `${a.id}\\..\\${b.id}\\x`, `${b.id.toUpperCase()}/x`];
  for (const [i, path] of tricks.entries()) {
    await expectDenied(`denied neighbour: ${a.id} reads ${JSON.stringify(path)}`, replicas[i % replicas.length]!, a, 'resource_out_of_scope', { token: tokenA, tool: CANARY_TOOLS.read, arguments: { path } });
  }
  await expectDenied(`denied neighbour: ${b.id} reads ${a.id}'s prefix`, last, b, 'resource_out_of_scope', { token: tokenB, tool: CANARY_TOOLS.read, arguments: { path: `${a.id}/x` } });
  // Tenant overrides in arguments, top level and nested.
  await expectDenied('tenant override: tenant_id in arguments', replicas[0]!, a, 'tenant_override', { token: tokenA, tool: CANARY_TOOLS.read, arguments: { path: `${a.id}/x`, tenant_id: b.id } });
  await expectDenied('tenant override: nested tid', last, a, 'tenant_override', { token: tokenA, tool: CANARY_TOOLS.read, arguments: { path: `${a.id}/x`, filter: { tid: b.id } } });
  // Forged, foreign and misdirected tokens.
  const [header, payload, signature] = tokenA.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, tid: b.id })).toString('base64url')}.${signature}`;
  const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, tid: b.id })).toString('base64url')}.`;
  await expectDenied('forged token: tid edited to the neighbour', replicas[0]!, null, 'token_invalid', { token: forged, tool: CANARY_TOOLS.read, arguments: { path: `${b.id}/x` } });
  await expectDenied('forged token: alg none', last, null, 'token_invalid', { token: unsigned, tool: CANARY_TOOLS.read, arguments: { path: `${b.id}/x` } });
  // Token-level denies are not (yet) recorded in the tenant's stream: seen, not attributed.
  await expectDenied(`wrong audience: a ${otherServer.id} token at ${server.id}`, replicas[0]!, a, 'audience_mismatch', { token: tokenAOther, tool: CANARY_TOOLS.read, arguments: { path: `${a.id}/x` } }, server.key, false);
  await expectDenied(`wrong audience: a ${server.id} token presented by ${otherServer.id}`, last, a, 'audience_mismatch', { token: tokenA, tool: CANARY_TOOLS.read, arguments: { path: `${a.id}/x` } }, otherServer.key, false);

  // Kill-switch rehearsal: revoke canary B, denied on every replica, restore, a new token serves.
  await check(`kill switch: revoke ${b.id}`, replicas[0]!, '200 revoked', async () => {
    const answer = await operator(replicas[0]!, 'POST', '/v1/revoke', { tenant: b.id, reason: `bulkhead selftest ${runId}` });
    return { observed: `${answer.status} ${answer.body?.revoked ? 'revoked' : (answer.body?.error ?? '')}`, ok: answer.status === 200 };
  });
  for (const replica of replicas) await expectDenied(`kill switch: ${b.id} denied after the revoke`, replica, b, 'tenant_revoked', { token: tokenB, tool: CANARY_TOOLS.read, arguments: { path: `${b.id}/x` } });
  await expectOwnLane(`kill switch: ${a.id} unaffected by ${b.id}'s revoke`, last, a, tokenA);
  await check(`kill switch: restore ${b.id}`, last, '200', async () => {
    const answer = await operator(last, 'POST', '/v1/restore', { tenant: b.id });
    return { observed: String(answer.status), ok: answer.status === 200 };
  });
  tokenB = await token(replicas[0]!, b, server.id);
  for (const replica of replicas) await expectOwnLane(`kill switch: ${b.id} serves again with a new token`, replica, b, tokenB);

  // The same arguments ({}) in both canaries, for the argument MAC check below (b's export is the quarantine's).
  await expectOwnLane(`argument MACs: ${a.id} exports`, last, a, tokenA, CANARY_TOOLS.export);

  // Quarantine rehearsal: more records than the tool allows quarantines the session on every replica.
  const quarantined = await token(last, b, server.id);
  await expectOwnLane(`quarantine: ${b.id} exports 2 records (max 1)`, replicas[0]!, b, quarantined, CANARY_TOOLS.export, 2);
  for (const replica of replicas) await expectDenied('quarantine: the session is quarantined', replica, b, 'session_quarantined', { token: quarantined, tool: CANARY_TOOLS.read, arguments: { path: `${b.id}/x` } });
  // …and an operator's lift releases it on every replica (and leaves no canary session quarantined behind).
  const quarantinedSid = (JSON.parse(Buffer.from(quarantined.split('.')[1]!, 'base64url').toString('utf8')) as { sid?: string }).sid ?? '';
  await check('quarantine: lift the session', last, '200 lifted', async () => {
    const answer = await operator(last, 'POST', '/v1/quarantines/lift', { session: quarantinedSid, tenant: b.id, reason: `bulkhead selftest ${runId}` });
    return { observed: `${answer.status} ${answer.body?.lifted ? 'lifted' : (answer.body?.error ?? '')}`, ok: answer.status === 200 && answer.body?.lifted === true };
  });
  for (const replica of replicas) await expectOwnLane('quarantine: the lifted session serves again', replica, b, quarantined);

  // Expiry: the short token, presented past its expiry and the broker's skew.
  const wait = shortExpiry + (options.expiryWaitSeconds ?? 6) * 1000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  await expectDenied('expired token', replicas[0]!, a, 'token_expired', { token: shortA, tool: CANARY_TOOLS.read, arguments: { path: `${a.id}/x` } }, server.key, false);

  // Audit attribution: each attempt made with a verified canary token is in that canary's stream only.
  const streams = new Map<string, Set<string>>();
  const records = new Map<string, AuditedCall[]>();
  for (const canary of [a, b]) {
    const answer = await operator(last, 'GET', `/v1/audit?tenant=${canary.id}&after=${auditHeads.get(canary.id)}&limit=10000`);
    const events = (answer.body?.events ?? []) as AuditedCall[];
    records.set(canary.id, events);
    streams.set(canary.id, new Set(events.map((e) => e.call_id).filter((id): id is string => typeof id === 'string')));
  }
  // Argument MACs are keyed per tenant: equal arguments match within a canary (on every replica), the
  // same arguments differ between the canaries, and none is the plain SHA-256 a reader could guess.
  await check('argument MACs: keyed per tenant', last, `equal within each canary, different across them, never SHA-256 of the arguments`, async () => {
    const macsOf = (canary: Canary, tool: string) => new Set((records.get(canary.id) ?? []).filter((e) => e.decision === 'allow' && e.tool === tool).map((e) => e.arguments_mac));
    const [readA, exportA, exportB] = [macsOf(a, CANARY_TOOLS.read), macsOf(a, CANARY_TOOLS.export), macsOf(b, CANARY_TOOLS.export)];
    const [ea, eb] = [[...exportA][0], [...exportB][0]];
    const plain = sha256Hex(canonicalJson({}));
    const ok = readA.size === 1 && exportA.size === 1 && exportB.size === 1 && typeof ea === 'string' && /^[0-9a-f]{64}$/.test(ea) && ea !== eb && ea !== plain && eb !== plain;
    return { observed: `${a.id} reads: ${readA.size} distinct MAC(s); exports of {}: ${ea === eb ? 'EQUAL across canaries' : 'different'}${ea === plain || eb === plain ? ', one is SHA-256({})' : ''}`, ok };
  });
  for (const canary of [a, b]) {
    const other = canary === a ? b : a;
    await check(`audit attribution: ${canary.id}`, last, "every attempt in its own stream, none in the neighbour's", async () => {
      const own = [...attempts].filter(([, tenant]) => tenant === canary.id).map(([id]) => id);
      const missing = own.filter((id) => !streams.get(canary.id)!.has(id));
      const misplaced = own.filter((id) => streams.get(other.id)!.has(id));
      return { observed: `${own.length - missing.length}/${own.length} in own stream, ${misplaced.length} in ${other.id}'s`, ok: own.length > 0 && missing.length === 0 && misplaced.length === 0 };
    });
    await check(`audit chain: ${canary.id} verifies`, replicas[0]!, 'ok', async () => {
      const answer = await operator(replicas[0]!, 'GET', `/v1/audit/verify?tenant=${canary.id}`);
      return { observed: answer.body?.ok === true ? `ok, ${answer.body.events} events` : `${answer.status} ${JSON.stringify(answer.body?.broken ?? answer.body?.error ?? '')}`, ok: answer.body?.ok === true };
    });
  }

  // Leak scan: no canary secret, key, credential or issued token in any answer or in /metrics, apart
  // from the one field each allow and token answer exists to carry.
  for (const replica of replicas) await http.request(replica, 'GET', '/metrics');
  const needles: Needle[] = [
    ...options.canaries.tenants.flatMap((t) => [...needlesFor(`client secret of ${t.principal}`, t.secret), ...needlesFor(`canary credential of ${t.id}`, t.credential_value)]),
    ...options.canaries.servers.flatMap((s) => needlesFor(`server key of ${s.id}`, s.key)),
    ...needlesFor('operator token', operatorToken),
    ...tokens.map((t, i) => ({ label: `issued token #${i}`, bytes: Buffer.from(t, 'utf8') })),
  ];
  await check('leak scan: every answer and /metrics', replicas.join(' '), 'no secret, key, credential or token where it does not belong', async () => {
    const findings = http.exchanges.flatMap((x, i) => findNeedles(needles, searchable(x.path, x.status, x.text)).map((label) => `answer #${i} (${x.path.split('?')[0]} → ${x.status}) holds the ${label}`));
    return { observed: findings.length ? findings.slice(0, 3).join('; ') + (findings.length > 3 ? ` (+${findings.length - 3})` : '') : `clean (${http.exchanges.length} answers)`, ok: findings.length === 0 };
  });

  const lanes: LaneReport[] = [a, b].map((canary) => ({
    tenant: canary.id,
    caller: canary.principal,
    capability: `${CANARY_TOOLS.read} under ${canary.id}/, ${CANARY_TOOLS.export}`,
    credential_mode: 'local canary secret, resolved per call',
    quota_owner: canary.id,
    typed_denial_seen: [...denialsSeen.get(canary.id)!].sort(),
  }));
  const report: Omit<SelftestReport, 'digest'> = {
    ok: checks.every((c) => c.ok),
    run_id: runId,
    started_at: started.toISOString(),
    finished_at: new Date().toISOString(),
    replicas,
    checks,
    lanes,
  };
  return { ...report, digest: sha256Hex(canonicalJson(report)) };
}

/** An answer minus the one field it may carry: an allow's own credential value, a token answer's token. */
function searchable(path: string, status: number, text: string): string {
  if (status !== 200 || (path !== '/v1/authorize' && path !== '/v1/token')) return text;
  try {
    const body = JSON.parse(text);
    if (path === '/v1/token') delete body.access_token;
    else if (body?.credential) delete body.credential.value;
    return JSON.stringify(body);
  } catch {
    return text;
  }
}

/** The report as the table an operator reads. */
export function formatReport(report: SelftestReport): string {
  const rows = report.checks.map((c) => [c.ok ? 'ok' : 'FAIL', c.check, c.replica, c.expected, c.observed, `${c.ms}`]);
  const header = ['', 'check', 'replica', 'expected', 'observed', 'ms'];
  const failed = report.checks.filter((c) => !c.ok).length;
  return [formatTable(header, rows), '', failed ? `CONTAINMENT NOT PROVEN: ${failed} of ${report.checks.length} checks failed` : `contained: ${report.checks.length} checks held on ${report.replicas.length} replica(s)`, `report digest ${report.digest}`].join('\n') + '\n';
}
