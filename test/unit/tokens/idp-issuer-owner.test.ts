import type { Policy } from '../../../src/policy/schema';
import { tenantOfIdpIssuer } from '../../../src/tokens/idp-issuer-owner';

/**
 * The tenant whose IdP signed a subject token or an ID-JAG is found by issuer. Policy validation allows
 * one tenant per issuer; the index must still never pick one of two that claim it (a policy object built
 * past the validator), and must answer for the policy it is given, not one it saw before.
 */
const idp = (issuer: string) => ({ issuer, jwks_uri: 'http://127.0.0.1:1/jwks', audience: 'bulkhead', principal_claim: 'sub' });
const policyOf = (tenants: Record<string, unknown>) => ({ tenants }) as unknown as Policy;

test('the one tenant naming an issuer owns it; an unknown issuer has no owner', () => {
  const policy = policyOf({ acme: { idp: idp('https://idp.acme.example') }, globex: { idp: idp('https://idp.globex.example') }, initech: {} });
  expect(tenantOfIdpIssuer(policy, 'https://idp.globex.example')?.[0]).toBe('globex');
  expect(tenantOfIdpIssuer(policy, 'https://idp.acme.example')?.[0]).toBe('acme');
  expect(tenantOfIdpIssuer(policy, 'https://idp.acme.example/')).toBeUndefined();
  expect(tenantOfIdpIssuer(policy, 'https://unknown.example')).toBeUndefined();
});

test('an issuer two or three tenants name has no owner', () => {
  const shared = 'https://idp.shared.example';
  expect(tenantOfIdpIssuer(policyOf({ a: { idp: idp(shared) }, b: { idp: idp(shared) } }), shared)).toBeUndefined();
  expect(tenantOfIdpIssuer(policyOf({ a: { idp: idp(shared) }, b: { idp: idp(shared) }, c: { idp: idp(shared) } }), shared)).toBeUndefined();
});

test('each policy object gets its own index (a reload that moves an issuer is seen at once)', () => {
  const issuer = 'https://idp.moving.example';
  expect(tenantOfIdpIssuer(policyOf({ acme: { idp: idp(issuer) } }), issuer)?.[0]).toBe('acme');
  expect(tenantOfIdpIssuer(policyOf({ globex: { idp: idp(issuer) } }), issuer)?.[0]).toBe('globex');
});
