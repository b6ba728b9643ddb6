import { setTimeout as sleep } from 'node:timers/promises';
import { manualClock } from '../../src/clock';
import { basicAuth, startHarness, type Harness } from '../support/broker-harness';
import { startIdps, type Idp, type IdpMode } from '../support/idp-server';
import { callId, claimsOf, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * A hostile or broken tenant IdP touches only its own tenant. acme's IdP (a real HTTP server on
 * 127.0.0.1) turns into every bad shape an IdP can take — a body that trickles, headers that never come,
 * 100 MB with and without a Content-Length, invalid JSON, a non-JWKS, HTTP 500 — while globex's IdP
 * stays good. Required: acme's exchanges answer 503 temporarily_unavailable (nothing issued), all of
 * them from ONE fetch (one in flight per IdP), then at once from the negative cache without touching the
 * network until the backoff expires; globex's exchanges are answered while acme's fetch is still hanging;
 * and acme recovers by itself when its IdP does. The broker's clock is the test's, so the backoff is
 * stepped, not waited for; the fetch deadline (upstreams.idp.timeout, 3 s here) is the real timer.
 */

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const MINUTE = 60_000;

let h: Harness;
let idps: Record<string, Idp>;
let closeIdps: () => Promise<void>;
const clock = manualClock(Date.UTC(2030, 0, 1, 9, 0, 0));
const now = () => Math.floor(clock.now() / 1000);

beforeAll(async () => {
  ({ idps, close: closeIdps } = await startIdps(['acme', 'globex']));
  h = await startHarness({
    brokerOptions: { clock },
    overrides: (p) => {
      p.broker.upstreams = { idp: { timeout: '3s', body_limit: '1mb' } };
      for (const tenant of ['acme', 'globex']) p.tenants[tenant].idp = { issuer: idps[tenant]!.issuer, jwks_uri: idps[tenant]!.jwksUri, audience: 'bulkhead', scope: ['query_crm'] };
    },
  });
});

afterAll(async () => {
  await h?.close();
  await closeIdps?.();
});

const exchange = (subject: string, extra: Record<string, unknown> = {}, headers?: Record<string, string>) =>
  h.tokenRequest({ grant_type: EXCHANGE, subject_token: subject, subject_token_type: JWT_TYPE, audience: 'crm-mcp', ...extra }, { form: true, headers });

function expectUnavailable(answer: { status: number; body: any; headers: Headers }): void {
  expect({ status: answer.status, error: answer.body?.error }).toEqual({ status: 503, error: 'temporarily_unavailable' });
  expect(answer.body).not.toHaveProperty('access_token');
  expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
}

async function expectGlobexWorks(): Promise<void> {
  const answer = await exchange(await idps.globex!.sign({}, now()));
  expect(answer.status).toBe(200);
  expect(claimsOf(answer.body.access_token)).toMatchObject({ tid: 'globex', sub: 'alice', aud: 'crm-mcp' });
  expectAllow(h, await h.authorize('crm-mcp', { token: answer.body.access_token, tool: 'query_crm', arguments: { path: 'globex/x' } }), 'globex');
}

/** Resolves once the IdP has seen its n-th abandoned response (the broker hung up on it). */
async function abandoned(idp: Idp, n: number): Promise<number> {
  while (idp.abandonedBytes.length < n) await sleep(20);
  return idp.abandonedBytes[n - 1]!;
}

describe('a hostile acme IdP costs acme alone', () => {
  beforeEach(() => {
    // Past the key cache (10 min) and any backoff (≤ 60 s) left by the previous case.
    clock.advance(11 * MINUTE);
  });

  const HANGING: IdpMode[] = ['trickle', 'slow-headers'];
  it.each<[IdpMode]>([['trickle'], ['slow-headers'], ['huge'], ['huge-declared'], ['invalid-json'], ['not-jwks'], ['status-500']])(
    'acme IdP %s: acme answers 503 temporarily_unavailable from one fetch, then from the negative cache; globex is unaffected',
    async (mode) => {
      const acme = idps.acme!;
      acme.mode = mode;
      const requestsBefore = acme.requests;
      const abandonedBefore = acme.abandonedBytes.length;
      const issuedBefore = h.issuedTokens.length;
      const subject = await acme.sign({}, now());

      const settled: boolean[] = [];
      const concurrent = Array.from({ length: 6 }, (_, i) => exchange(subject).finally(() => (settled[i] = true)));
      // While acme's exchanges wait on its IdP, globex gets tokens and calls allowed.
      await expectGlobexWorks();
      if (HANGING.includes(mode)) expect(settled.filter(Boolean)).toEqual([]);

      for (const answer of await Promise.all(concurrent)) expectUnavailable(answer);
      expect(acme.requests - requestsBefore).toBe(1);

      // Negative cache: answered at once, without a request to the IdP.
      expectUnavailable(await exchange(subject));
      expectUnavailable(await exchange(await acme.sign({ sub: 'bob' }, now())));
      expect(acme.requests - requestsBefore).toBe(1);
      expect(h.issuedTokens.length).toBe(issuedBefore + 1); // globex's token only

      if (mode === 'huge' || mode === 'huge-declared') {
        // The broker stopped reading near the 1 MB cap: the IdP could not push its 100 MB.
        expect(await abandoned(acme, abandonedBefore + 1)).toBeLessThan(100 * 1024 * 1024 / 4);
      }
      await expectGlobexWorks();
    },
  );

  it('backs off exponentially between fetches, and recovers without a restart when the IdP does', async () => {
    const acme = idps.acme!;
    const subject = () => acme.sign({}, now());
    // A success resets the backoff (the cases above left it doubled); then the cached keys expire.
    acme.mode = 'good';
    expect((await exchange(await subject())).status).toBe(200);
    clock.advance(11 * MINUTE);
    acme.mode = 'status-500';
    const start = acme.requests;
    expectUnavailable(await exchange(await subject()));
    expect(acme.requests - start).toBe(1);

    // Backoff 1 s: nothing before it is over, one fetch after.
    clock.advance(900);
    expectUnavailable(await exchange(await subject()));
    expect(acme.requests - start).toBe(1);
    clock.advance(200);
    expectUnavailable(await exchange(await subject()));
    expect(acme.requests - start).toBe(2);

    // Then 2 s.
    clock.advance(1100);
    expectUnavailable(await exchange(await subject()));
    expect(acme.requests - start).toBe(2);
    clock.advance(1000);
    expectUnavailable(await exchange(await subject()));
    expect(acme.requests - start).toBe(3);

    // The IdP comes back: once the (4 s) backoff is over, acme exchanges work again.
    acme.mode = 'good';
    expectUnavailable(await exchange(await subject()));
    clock.advance(4100);
    const answer = await exchange(await subject());
    expect(answer.status).toBe(200);
    expect(claimsOf(answer.body.access_token)).toMatchObject({ tid: 'acme', sub: 'alice' });
    expect(acme.requests - start).toBe(4);
    // And keys are cached: the next exchange needs no fetch.
    expect((await exchange(await subject())).status).toBe(200);
    expect(acme.requests - start).toBe(4);
  });

  it('keeps using cached keys while acme\'s cache is fresh, even if its IdP turns hostile', async () => {
    const acme = idps.acme!;
    acme.mode = 'good';
    expect((await exchange(await acme.sign({}, now()))).status).toBe(200);
    const requests = acme.requests;
    acme.mode = 'slow-headers';
    clock.advance(MINUTE);
    expect((await exchange(await acme.sign({}, now()))).status).toBe(200);
    expect(acme.requests).toBe(requests);
  });
});

describe('IdP tokens keep the broker-wide clock_skew (30 s)', () => {
  beforeAll(() => {
    clock.advance(11 * MINUTE);
    idps.acme!.mode = 'good';
  });

  it('accepts an IdP token that expired 20 s ago, and refuses one 31 s past (invalid_grant, not 503)', async () => {
    const t = now();
    expect((await exchange(await idps.acme!.sign({ iat: t - 300, exp: t - 20 }, t))).status).toBe(200);
    const late = await exchange(await idps.acme!.sign({ iat: t - 300, exp: t - 31 }, t));
    expect([late.status, late.body.error]).toEqual([400, 'invalid_grant']);
    expect(late.body).not.toHaveProperty('access_token');
  });
});

describe('client credentials on an IdP exchange, and refresh of an IdP session', () => {
  beforeAll(() => {
    clock.advance(11 * MINUTE);
    idps.acme!.mode = 'good';
  });

  it('verifies presented credentials even though an IdP exchange needs none (invalid_client, 401)', async () => {
    const subject = await idps.acme!.sign({}, now());
    const before = h.issuedTokens.length;
    for (const [body, headers] of [
      [{ client_id: 'acme-agent', client_secret: 'not-the-secret' }, undefined],
      [{ client_id: 'acme-agent' }, undefined],
      [{}, basicAuth('acme-agent', 'not-the-secret')],
      [{ client_id: 'globex-agent', client_secret: h.clientSecrets['globex-agent'] }, undefined],
      [{}, { authorization: `Bearer ${h.serverKeys['crm-mcp']}` }],
    ] as Array<[Record<string, string>, Record<string, string> | undefined]>) {
      const answer = await exchange(subject, body, headers);
      expect([answer.status, answer.body.error]).toEqual([401, 'invalid_client']);
      expect(answer.body).not.toHaveProperty('access_token');
    }
    expect(h.issuedTokens.length).toBe(before);
    expect((await exchange(subject, { client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] })).status).toBe(200);
    expect((await exchange(subject)).status).toBe(200);
  });

  it('refreshes an IdP principal by a fresh IdP token only: its Bulkhead token cannot be exchanged by any client', async () => {
    const fromIdp = (await exchange(await idps.acme!.sign({}, now()))).body.access_token as string;
    expect(claimsOf(fromIdp).sub).toBe('alice');
    const before = h.issuedTokens.length;
    const refresh = { grant_type: EXCHANGE, subject_token: fromIdp, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
    for (const creds of [{}, { client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] }, { client_id: 'alice', client_secret: 'x' }]) {
      const answer = await h.tokenRequest({ ...refresh, ...creds });
      expect([answer.status, answer.body.error]).toEqual([401, 'invalid_client']);
      expect(answer.body).not.toHaveProperty('access_token');
    }
    expect(h.issuedTokens.length).toBe(before);
    const id = callId('idp-session');
    expectDeny(h, await h.authorize('mail-mcp', { token: fromIdp, tool: 'send_email', arguments: {}, call_id: id }), 403, 'audience_mismatch');
    await expectNoAllowAnywhere(h, [id]);
  });
});

describe('secrets', () => {
  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});
