import type { OAuthClient } from '../../../src/oauth/clients';
import { findTenant } from '../../../src/oauth/tenant-finder';
import type { Policy } from '../../../src/policy/schema';

/**
 * Which tenant's IdP a browser login goes to. The login domains are looked up through an index built per
 * policy; these check that it answers what the scan it replaced answered, for every way a domain arrives
 * (email login_hint, typed email, typed domain), and that nothing a caller sends moves a bound client's
 * login or reaches a tenant that has no interactive login.
 */
const login = (domains: string[]) => ({ issuer: 'https://idp.example', jwks_uri: 'http://127.0.0.1:1/jwks', audience: 'bulkhead', principal_claim: 'sub', login: { domains } });
const policyOf = (tenants: Record<string, unknown>) => ({ tenants }) as unknown as Policy;
const client = (tenant?: string): OAuthClient => ({ clientId: 'desktop-agent', redirectUris: ['http://127.0.0.1/cb'], kind: 'static', ...(tenant ? { tenant } : {}) });

const policy = policyOf({
  acme: { idp: login(['acme.example', 'acme-corp.example']) },
  globex: { idp: login(['globex.example']) },
  // An IdP for token exchange only: no interactive login, so never a login target.
  initech: { idp: { issuer: 'https://idp.initech.example', jwks_uri: 'http://127.0.0.1:1/jwks', audience: 'bulkhead', principal_claim: 'sub' } },
  umbrella: {},
});

test.each([
  [{ loginHint: 'alice@acme.example' }, 'acme'],
  [{ loginHint: 'bob@ACME-Corp.Example ' }, 'acme'],
  [{ loginHint: 'carol@globex.example' }, 'globex'],
  [{ organization: 'dave@globex.example' }, 'globex'],
  [{ organization: ' acme-corp.example ' }, 'acme'],
  [{ organization: 'ACME' }, 'acme'],
  // A hint in a known domain picks its tenant before what was typed.
  [{ loginHint: 'erin@globex.example', organization: 'acme' }, 'globex'],
])('%j goes to %s', (hints, tenant) => {
  expect(findTenant(policy, client(), hints)).toEqual({ tenant });
});

test.each([
  [{}, false],
  [{ loginHint: 'frank@initech.example' }, false],
  [{ loginHint: 'alice@sub.acme.example' }, false],
  [{ organization: 'initech' }, true],
  [{ organization: 'umbrella' }, true],
  [{ organization: 'nobody.example' }, true],
  [{ organization: '__proto__' }, true],
  [{ organization: 'constructor' }, true],
  [{ organization: 'toString.example' }, true],
])('%j asks for the organisation (unknown: %s)', (hints, unknown) => {
  expect(findTenant(policy, client(), hints)).toEqual({ ask: true, unknown });
});

test('a client bound to a tenant logs in there; a hint may agree with it but never move it', () => {
  expect(findTenant(policy, client('acme'), {})).toEqual({ tenant: 'acme' });
  expect(findTenant(policy, client('acme'), { loginHint: 'alice@acme-corp.example', organization: 'acme' })).toEqual({ tenant: 'acme' });
  expect(findTenant(policy, client('acme'), { loginHint: 'carol@globex.example' })).toEqual({ conflict: true });
  expect(findTenant(policy, client('acme'), { organization: 'globex.example' })).toEqual({ conflict: true });
});

test('a domain two tenants claim (a policy built past validation) sends the login to neither', () => {
  const shared = policyOf({ a: { idp: login(['shared.example']) }, b: { idp: login(['shared.example', 'b.example']) } });
  expect(findTenant(shared, client(), { loginHint: 'x@shared.example' })).toEqual({ ask: true, unknown: false });
  expect(findTenant(shared, client(), { loginHint: 'x@b.example' })).toEqual({ tenant: 'b' });
});

test('each policy object gets its own index (a reload that moves a domain is seen at once)', () => {
  expect(findTenant(policyOf({ acme: { idp: login(['moving.example']) } }), client(), { loginHint: 'x@moving.example' })).toEqual({ tenant: 'acme' });
  expect(findTenant(policyOf({ globex: { idp: login(['moving.example']) } }), client(), { loginHint: 'x@moving.example' })).toEqual({ tenant: 'globex' });
});
