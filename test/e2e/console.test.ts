import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { sha256Hex } from '../../src/crypto/hash';
import { createMemoryCrmStore, demoDataset, type MemoryCrmStore } from '../../examples/crm-mcp/crm-store';
import { startCrmServer, type CrmServer } from '../../examples/crm-mcp/server';
import { startHarness, TENANTS, type Harness } from '../support/broker-harness';
import { describeWithChromium, launchChromium, recordBrowserSession } from '../support/browser';
import { auditEvents } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';
import { claimsOf, connectMcp, denyOf, textOf, type McpConnection } from '../support/mcp-client';

/**
 * The operator console in real Chromium (Debian's, through playwright-core), against a real broker and
 * the example CRM MCP server driven by the MCP SDK's client — the agent. The operator signs in as
 * "oncall" (a second operator), so every audit record proves it names the signed-in operator.
 *
 * Screenshots of each page go to $BULKHEAD_SCREENSHOTS (`npm run screenshots` sets docs/console),
 * else to a temporary directory, so the code that takes them runs every time.
 */

const oncallToken = randomBytes(24).toString('base64url');
const email = { to: 'cfo@acme.example', subject: 'Q3', body: 'numbers attached' };

describeWithChromium('operator console in Chromium', () => {
  let h: Harness;
  let store: MemoryCrmStore;
  let crm: CrmServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let session: ReturnType<typeof recordBrowserSession>;
  let shots: string;
  const agents: McpConnection[] = [];

  const agent = async (principal = 'acme-agent') => {
    const connection = await connectMcp(crm.url, await h.token(principal, 'crm-mcp'));
    agents.push(connection);
    return connection;
  };
  const shot = async (name: string) => {
    await session.snapshot(name);
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  };
  const cookie = async () => (await context.cookies()).find((c) => c.name === 'bulkhead_console');
  const consoleFetch = (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    fetch(`${h.url}/console/api${path}`, { method: init.method ?? 'GET', headers: init.headers, body: init.body }).then(async (r) => {
      const text = await r.text();
      h.exchanges.push({ method: init.method ?? 'GET', path: `/console/api${path}`, status: r.status, text });
      return { status: r.status, body: JSON.parse(text) };
    });

  beforeAll(async () => {
    shots = process.env.BULKHEAD_SCREENSHOTS ? resolve(process.env.BULKHEAD_SCREENSHOTS) : await mkdtemp(join(tmpdir(), 'bulkhead-console-shots-'));
    await mkdir(shots, { recursive: true });
    h = await startHarness({
      overrides: (p) => {
        p.operators.oncall = { token_sha256: sha256Hex(oncallToken) };
        p.tenants.acme.budgets = { hourly: 1000, daily: 5000 };
      },
    });
    store = createMemoryCrmStore(TENANTS.map((t) => demoDataset(t, [h.upstream[t]!])));
    crm = await startCrmServer({
      // The v1 entry holds a call that needs approval in-request, so the agent simply waits on its call.
      entry: 'v1',
      brokerUrl: h.url,
      serverId: 'crm-mcp',
      serverKey: h.serverKeys['crm-mcp']!,
      store,
      port: 0,
      logger: { info: () => undefined, warn: () => undefined },
      // The agent waits in-request for the operator (as a v1 MCP client would), polling the broker.
      approval: { waitMs: 120_000, pollMs: 100, maxPollMs: 300 },
    });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    session = recordBrowserSession(h, page);
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await browser?.close();
    await crm?.close();
    await h?.close();
  });

  it('serves the page with a strict CSP (no inline script or style), no framing, and nothing from elsewhere', async () => {
    const answer = await fetch(`${h.url}/console/`);
    const html = await answer.text();
    const csp = answer.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*|https?:/);
    expect(answer.headers.get('x-frame-options')).toBe('DENY');
    expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    expect([...html.matchAll(/<script\b([^>]*)>/g)].map((m) => m[1])).toEqual([' src="/console/assets/app.js" defer']);
    expect(html).not.toMatch(/\sstyle=|\son[a-z]+=|https?:\/\//);
    // Every API answer carries the same headers, errors included.
    const refused = await fetch(`${h.url}/console/api/inbox`);
    expect(refused.headers.get('content-security-policy')).toBe(csp);
    expect(refused.headers.get('cache-control')).toBe('no-store');
  });

  it('refuses a wrong operator token, and signs in with the right one into an HttpOnly, SameSite=Strict cookie that holds no token', async () => {
    await page.goto(`${h.url}/console/`);
    await page.getByLabel('Operator token').waitFor();
    await shot('sign-in');
    await page.getByLabel('Operator token').fill(h.serverKeys['crm-mcp']!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
    expect(await cookie()).toBeUndefined();

    await page.getByLabel('Operator token').fill(oncallToken);
    await page.keyboard.press('Enter');
    await page.getByTestId('operator').filter({ hasText: 'oncall' }).waitFor();
    const c = (await cookie())!;
    expect(c).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/console', secure: false });
    expect(c.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    session.sessionIds.push(c.value);
    expect(c.value).not.toContain(oncallToken);
    expect(await page.evaluate('document.cookie')).toBe('');
    expect(await page.evaluate("[...document.querySelectorAll('input')].map((i) => i.value)")).not.toContain(oncallToken);
    // The operator API itself never takes the cookie: it wants a bearer token.
    const withCookie = await fetch(`${h.url}/v1/tenants/acme`, { headers: { cookie: `bulkhead_console=${c.value}` } });
    expect(withCookie.status).toBe(401);
  });

  it("shows a pending approval while the agent waits; approved in the browser, the agent's call completes", async () => {
    const acme = await agent();
    const waiting = acme.call('send_email', email);
    await page.goto(`${h.url}/console/#/inbox`);
    const row = page.locator('tr[data-tenant="acme"]').filter({ hasText: 'send_email' });
    await row.waitFor();
    await expect(row.textContent()).resolves.toContain('acme-agent');
    await expect(row.textContent()).resolves.toContain(claimsOf(acme.token).sid.slice(0, 8));
    // The operator sees what they approve: the effective arguments, not just their hash.
    await expect(row.locator('pre.args').textContent()).resolves.toContain(email.to);
    expect(JSON.parse((await row.locator('pre.args').textContent())!)).toEqual(email);
    expect(store.outbox('acme')).toEqual([]);
    await shot('inbox');

    const approvalId = await row.getAttribute('data-approval');
    await row.getByRole('textbox', { name: /^Reason for deciding send_email/ }).fill('customer asked for it (ticket 4711)');
    await row.getByRole('button', { name: /^Approve send_email/ }).click();
    const result = await waiting;
    expect(result.isError).toBeFalsy();
    expect(store.outbox('acme')).toEqual([email]);
    await row.waitFor({ state: 'detached' });

    const decided = (await auditEvents(h, 'acme')).filter((e) => e.type === 'approval' && e.detail === approvalId);
    expect(decided.map((e) => [e.status, e.operator, e.reason])).toEqual([['approved', 'oncall', 'customer asked for it (ticket 4711)']]);
  });

  it('denied in the browser, the waiting call is refused and never runs', async () => {
    const acme = await agent();
    const mail = { ...email, subject: 'Q4' };
    const waiting = acme.call('send_email', mail);
    const row = page.locator('tr[data-tenant="acme"]').filter({ hasText: 'send_email' });
    await row.waitFor();
    await row.getByRole('button', { name: /^Deny send_email/ }).click();
    const refused = await waiting;
    expect(denyOf(refused)?.reason).toBe('approval_required');
    expect(store.outbox('acme')).toEqual([email]);
    expect((await auditEvents(h, 'acme')).filter((e) => e.type === 'approval' && e.status === 'denied').map((e) => e.operator)).toEqual(['oncall']);
  });

  it("revokes a session from the kill switch (target typed back, with a reason): the agent's next call is denied session_revoked", async () => {
    const acme = await agent();
    const other = await agent();
    expect(JSON.parse(textOf(await acme.call('query_crm', { path: 'acme/contacts' }))).rows.length).toBeGreaterThan(0);
    const sid = claimsOf(acme.token).sid as string;

    await page.goto(`${h.url}/console/#/kill-switch`);
    await page.getByLabel('What to revoke').selectOption('session');
    await page.getByLabel('Target', { exact: true }).fill(sid);
    await page.getByLabel('Reason').fill('agent looping on exports');
    const revoke = page.getByRole('button', { name: 'Revoke' });
    await page.getByLabel('Type the target again to confirm').fill(sid.slice(0, -1));
    expect(await revoke.isDisabled()).toBe(true);
    await page.getByLabel('Type the target again to confirm').fill(sid);
    expect(await revoke.isDisabled()).toBe(false);
    await shot('kill-switch');
    await revoke.click();
    await page.getByTestId('revoke-result').waitFor();

    const denied = await acme.call('query_crm', { path: 'acme/contacts' });
    expect(denied.isError).toBe(true);
    expect(textOf(denied)).toContain('session_revoked');
    // The same principal's other session is untouched.
    expect(JSON.parse(textOf(await other.call('query_crm', { path: 'acme/contacts' }))).rows.length).toBeGreaterThan(0);
    const revokes = (await auditEvents(h, 'acme')).filter((e) => e.type === 'revoke');
    expect(revokes.map((e) => [e.operator, e.reason])).toEqual([['oncall', 'agent looping on exports']]);
  });

  it("lifts that session revocation from the kill switch (reason, target typed back): the same agent's next call is served", async () => {
    const acme = await agent();
    const sid = claimsOf(acme.token).sid as string;
    expect((await h.post('/v1/revoke', { session: sid, reason: 'wrong session' }, h.operatorToken)).status).toBe(200);
    expect(textOf(await acme.call('query_crm', { path: 'acme/contacts' }))).toContain('session_revoked');

    // From another page, so the kill switch renders afresh (the previous test left the browser on it).
    await page.goto(`${h.url}/console/#/inbox`);
    await page.goto(`${h.url}/console/#/kill-switch`);
    const item = page.getByTestId('revocations').locator(`li[data-target="${sid}"]`);
    await item.waitFor();
    const lift = item.getByRole('button', { name: `Lift session ${sid}` });
    await item.getByLabel(`Why lift session ${sid}`).fill('revoked the wrong session');
    await item.getByLabel(`Type ${sid} to confirm`).fill(sid.slice(1));
    expect(await lift.isDisabled()).toBe(true);
    await item.getByLabel(`Type ${sid} to confirm`).fill(sid);
    await lift.click();
    await item.getByText('lifted; its next call is served').waitFor();

    expect(JSON.parse(textOf(await acme.call('query_crm', { path: 'acme/contacts' }))).rows.length).toBeGreaterThan(0);
    const restores = (await auditEvents(h, 'acme')).filter((e) => e.type === 'restore' && e.detail === `session ${sid}`);
    expect(restores.map((e) => [e.operator, e.reason])).toEqual([['oncall', 'revoked the wrong session']]);
  });

  it('releases a quarantined session from the kill switch: its next call is served, and the release is audited as the operator', async () => {
    const token = await h.token('globex-agent', 'crm-mcp');
    const sid = claimsOf(token).sid as string;
    const exported = await h.authorize('crm-mcp', { token, tool: 'export_report', arguments: {} });
    expect((await h.post('/v1/complete', { call_id: exported.body.call_id, status: 'success', records: 5000 }, h.serverKeys['crm-mcp'])).body.quarantined).toBe(true);
    const query = () => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'globex/contacts' } });
    expect((await query()).body.reason).toBe('session_quarantined');

    await page.goto(`${h.url}/console/#/inbox`);
    await page.goto(`${h.url}/console/#/kill-switch`);
    const item = page.getByTestId('quarantines').locator(`li[data-target="${sid}"]`);
    await item.waitFor();
    await expect(item.textContent()).resolves.toContain('5000 records');
    await item.getByLabel(`Why lift session ${sid}`).fill('export was expected');
    await item.getByLabel(`Type ${sid} to confirm`).fill(sid);
    await shot('kill-switch-lifts');
    await item.getByRole('button', { name: `Release session ${sid}` }).click();
    await item.getByText('released; its next call is served').waitFor();

    expect((await query()).body.decision).toBe('allow');
    expect((await auditEvents(h, 'globex')).filter((e) => e.type === 'quarantine_lift').map((e) => [e.operator, e.session, e.reason])).toEqual([['oncall', sid, 'export was expected']]);
    expect((await h.get('/v1/quarantines', h.operatorToken)).body.quarantines).toEqual([]);
  });

  it('revokes a tenant and restores it from the revoked list, each typed back', async () => {
    const before = await h.token('initech-agent', 'crm-mcp');
    const query = (token: string) => h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'initech/contacts' } });
    expect((await query(before)).body.decision).toBe('allow');
    await page.goto(`${h.url}/console/#/kill-switch`);
    await page.getByLabel('What to revoke').selectOption('tenant');
    await page.getByLabel('Target', { exact: true }).fill('initech');
    await page.getByLabel('Reason').fill('incident 42');
    await page.getByLabel('Type the target again to confirm').fill('initech');
    await page.getByRole('button', { name: 'Revoke' }).click();
    const item = page.getByTestId('revoked-tenants').locator('li[data-tenant="initech"]');
    await item.waitFor();
    expect((await h.get('/v1/tenants/initech', h.operatorToken)).body.revoked).toBe(true);
    expect([(await query(before)).status, (await query(before)).body.reason]).toEqual([403, 'tenant_revoked']);

    await item.getByLabel('Type initech to restore').fill('initech');
    await item.getByRole('button', { name: 'Restore initech' }).click();
    await item.waitFor({ state: 'detached' });
    expect((await h.get('/v1/tenants/initech', h.operatorToken)).body.revoked).toBe(false);
    expect((await query(await h.token('initech-agent', 'crm-mcp'))).body.decision).toBe('allow');
    expect((await auditEvents(h, 'initech')).filter((e) => e.type === 'revoke' || e.type === 'restore').map((e) => [e.type, e.operator])).toEqual([
      ['revoke', 'oncall'],
      ['restore', 'oncall'],
    ]);
  });

  it('shows every tenant with its state, and a tenant audit page holding only that tenant', async () => {
    const globex = await agent('globex-agent');
    const globexCall = await globex.call('query_crm', { path: 'globex/contacts' });
    expect(globexCall.isError).toBeFalsy();
    const globexIds = (await auditEvents(h, 'globex')).map((e) => e.call_id).filter(Boolean);
    expect(globexIds.length).toBeGreaterThan(0);

    await page.goto(`${h.url}/console/#/tenants`);
    for (const t of TENANTS) await page.locator(`article[data-tenant="${t}"]`).waitFor();
    await shot('tenants');

    await page.locator('article[data-tenant="acme"]').getByRole('link', { name: 'acme' }).click();
    await page.getByTestId('chain-status').filter({ hasText: 'intact' }).waitFor();
    const rows = page.getByTestId('audit-table').locator('tbody tr');
    await rows.first().waitFor();
    const tenants = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-tenant')));
    expect(tenants.length).toBe((await auditEvents(h, 'acme')).length);
    expect(new Set(tenants)).toEqual(new Set(['acme']));
    const html = await page.content();
    for (const id of globexIds) expect(html).not.toContain(id);
    expect(html).not.toContain('globex-agent');
    // Budget use from GET /v1/tenants/:id, drawn as gauges.
    await page.getByText(/hourly budget \(resets/).waitFor();
    await page.getByText(/daily budget \(resets/).waitFor();
    // The stream's signed checkpoints, from GET /v1/audit/checkpoints.
    await page.getByText(/\d+ signed checkpoint\(s\)/).waitFor();
    await page.getByLabel('Decision').selectOption('deny');
    expect(await rows.evaluateAll((trs) => trs.every((tr) => tr.textContent!.includes('deny')))).toBe(true);
    await page.getByLabel('Decision').selectOption('');
    await shot('tenant');
  });

  it('draws the charts from /metrics as SVG', async () => {
    await page.goto(`${h.url}/console/#/charts`);
    // A rate needs two samples: the page polls until the broker has taken them.
    // (Polled from here: a predicate evaluated as a string in the page is, rightly, refused by the CSP.)
    // Traffic meanwhile, allowed and denied, so the rates have something to show.
    const token = await h.token('globex-agent', 'crm-mcp');
    let n = 0;
    while (Number(await page.locator('[data-samples]').getAttribute('data-samples')) < 4) {
      await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'globex/contacts' } });
      if (n++ % 3 === 0) await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/contacts' } });
      if (n % 5 === 0) await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'globex/x', tenant_id: 'acme' } });
      await page.waitForTimeout(200);
    }
    await page.locator('svg.chart path.line').first().waitFor({ state: 'attached' });
    const labels = await page.locator('svg.chart[role="img"]').evaluateAll((svgs) => svgs.map((s) => s.getAttribute('aria-label')));
    expect(labels.some((l) => l?.startsWith('Authorize decisions by reason') && l.includes('allow'))).toBe(true);
    expect(labels.some((l) => l?.startsWith('Authorize latency p50 and p99'))).toBe(true);
    expect(labels.some((l) => l?.startsWith('Signing key and certificate age'))).toBe(true);
    expect(await page.locator('main table').count()).toBe(0);
    await shot('charts');
  }, 120_000);

  it('refuses state changes without the CSRF token or from another origin, and everything without the cookie; nothing changes', async () => {
    const c = (await cookie())!;
    const { csrf_token: csrf } = (await page.evaluate("fetch('/console/api/session').then((r) => r.json())")) as { csrf_token: string };
    const origin = h.url;
    const revoke = JSON.stringify({ tenant: 'globex', reason: 'csrf', confirm: 'globex' });
    const json = { 'content-type': 'application/json' };
    const attempts: Array<[string, Record<string, string>, number, string]> = [
      ['no cookie', { ...json, origin, 'x-csrf-token': csrf }, 401, 'operator_unauthenticated'],
      ['a made-up cookie', { ...json, origin, 'x-csrf-token': csrf, cookie: `bulkhead_console=${randomBytes(32).toString('base64url')}` }, 401, 'operator_unauthenticated'],
      ['the operator token as the cookie', { ...json, origin, 'x-csrf-token': csrf, cookie: `bulkhead_console=${h.operatorToken}` }, 401, 'operator_unauthenticated'],
      ['no CSRF token', { ...json, origin, cookie: `bulkhead_console=${c.value}` }, 403, 'csrf_refused'],
      ['a wrong CSRF token', { ...json, origin, 'x-csrf-token': randomBytes(32).toString('base64url'), cookie: `bulkhead_console=${c.value}` }, 403, 'csrf_refused'],
      ['the cookie value as the CSRF token', { ...json, origin, 'x-csrf-token': c.value, cookie: `bulkhead_console=${c.value}` }, 403, 'csrf_refused'],
      ['another origin', { ...json, origin: 'http://evil.example', 'x-csrf-token': csrf, cookie: `bulkhead_console=${c.value}` }, 403, 'csrf_refused'],
      ['a sibling port on the same host', { ...json, origin: 'http://127.0.0.1:1', 'x-csrf-token': csrf, cookie: `bulkhead_console=${c.value}` }, 403, 'csrf_refused'],
      ['no Origin', { ...json, 'x-csrf-token': csrf, cookie: `bulkhead_console=${c.value}` }, 403, 'csrf_refused'],
      ['Sec-Fetch-Site cross-site', { ...json, origin, 'sec-fetch-site': 'cross-site', 'x-csrf-token': csrf, cookie: `bulkhead_console=${c.value}` }, 403, 'csrf_refused'],
    ];
    for (const [what, headers, status, error] of attempts) {
      for (const path of ['/op/v1/revoke', '/op/v1/approvals/x/approve', '/op/v1/keys/rotate']) {
        const answer = await consoleFetch(path, { method: 'POST', headers, body: path === '/op/v1/revoke' ? revoke : '{}' });
        expect([what, path, answer.status, answer.body.error]).toEqual([what, path, status, error]);
      }
    }
    for (const path of ['/inbox', '/overview', '/metrics', '/op/v1/tenants/acme', '/op/v1/audit?tenant=acme']) {
      const answer = await consoleFetch(path);
      expect([path, answer.status, answer.body.error]).toEqual([path, 401, 'operator_unauthenticated']);
    }
    // Sign-in from another origin is refused too (no login CSRF).
    const foreign = await consoleFetch('/session', { method: 'POST', headers: { ...json, origin: 'http://evil.example' }, body: JSON.stringify({ token: oncallToken }) });
    expect([foreign.status, foreign.body.error]).toEqual([403, 'csrf_refused']);
    // The console refuses a revoke whose target was not typed back, even with every check passed.
    const untyped = await consoleFetch('/op/v1/revoke', { method: 'POST', headers: { ...json, origin, 'x-csrf-token': csrf, cookie: `bulkhead_console=${c.value}` }, body: JSON.stringify({ tenant: 'globex', reason: 'r', confirm: 'globe' }) });
    expect([untyped.status, untyped.body.error]).toEqual([400, 'bad_request']);
    // So does a restore and a quarantine release.
    for (const [path, body] of [
      ['/op/v1/restore', { session: 'some-session', reason: 'r', confirm: 'some-sessio' }],
      ['/op/v1/quarantines/lift', { session: 'some-session', reason: 'r' }],
    ] as const) {
      const refused = await consoleFetch(path, { method: 'POST', headers: { ...json, origin, 'x-csrf-token': csrf, cookie: `bulkhead_console=${c.value}` }, body: JSON.stringify(body) });
      expect([refused.status, refused.body.message]).toEqual([400, 'confirm: type the target again to confirm']);
    }

    expect((await h.get('/v1/tenants/globex', h.operatorToken)).body.revoked).toBe(false);
    expect((await auditEvents(h, 'globex')).filter((e) => e.type === 'revoke')).toEqual([]);
    // With both, the same request goes through: the refusals above were the checks, not a broken route.
    const rotated = await consoleFetch('/op/v1/keys/rotate', { method: 'POST', headers: { ...json, origin, 'x-csrf-token': csrf, cookie: `bulkhead_console=${c.value}` }, body: '{}' });
    expect([rotated.status, rotated.body.rotated]).toEqual([200, true]);
    const missing = await consoleFetch('/op/v1/no-such-endpoint', { headers: { cookie: `bulkhead_console=${c.value}` } });
    expect([missing.status, missing.body.endpoint]).toEqual([404, 'missing']);
  });

  it('signs out: the old cookie opens nothing afterwards', async () => {
    const old = (await cookie())!.value;
    await page.goto(`${h.url}/console/#/inbox`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Operator token').waitFor();
    expect(await cookie()).toBeUndefined();
    const replayed = await consoleFetch('/inbox', { headers: { cookie: `bulkhead_console=${old}` } });
    expect([replayed.status, replayed.body.error]).toEqual([401, 'operator_unauthenticated']);
    await page.goto(`${h.url}/console/#/tenants`);
    await page.getByLabel('Operator token').waitFor();
    expect(await page.locator('article[data-tenant]').count()).toBe(0);
  });

  it('broke no CSP rule, and no page or answer of the whole browser session holds a secret, a token or a session id', async () => {
    await session.settled();
    expect(session.consoleErrors.filter((m) => /Content Security Policy|Refused to/i.test(m))).toEqual([]);
    const browserAnswers = h.exchanges.filter((x) => x.path.startsWith('browser '));
    expect(browserAnswers.filter((x) => x.path.includes('/console/api/')).length).toBeGreaterThan(20);
    expect(browserAnswers.some((x) => x.path === 'browser /console/assets/app.js')).toBe(true);
    const extra = [{ label: 'operator token of oncall', value: oncallToken }, ...session.sessionIds.map((value, i) => ({ label: `console session id #${i}`, value }))];
    expect(await findLeaks(h, extra)).toEqual([]);
  });
});
