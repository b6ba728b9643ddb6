import { certificateIdentity, identityFromSan, identityUri } from '../../../rotation/tls-identity';

const policy = () => ({ servers: { 'crm-mcp': {} }, operators: { ops: {} } }) as never;
/** A socket as Node's TLS layer presents it after the handshake. */
const socket = (subjectaltname: string | undefined, authorized = true) => ({ socket: { authorized, getPeerCertificate: () => ({ subjectaltname }) } });

describe('client certificate identity', () => {
  const fromCertificate = certificateIdentity(policy);

  it('reads a registered server id from its spiffe://bulkhead/server/ SAN URI', () => {
    expect(fromCertificate(socket('DNS:crm.internal, URI:spiffe://bulkhead/server/crm-mcp'), 'server')).toBe('crm-mcp');
    expect(fromCertificate(socket('URI:spiffe://bulkhead/operator/ops'), 'operator')).toBe('ops');
  });

  it('never lets a server certificate act as an operator, or the other way round', () => {
    expect(fromCertificate(socket('URI:spiffe://bulkhead/server/crm-mcp'), 'operator')).toBeNull();
    expect(fromCertificate(socket('URI:spiffe://bulkhead/operator/ops'), 'server')).toBeNull();
  });

  it('names nobody when the chain was not verified, the id is not registered, or the SAN is ambiguous', () => {
    expect(fromCertificate(socket('URI:spiffe://bulkhead/server/crm-mcp', false), 'server')).toBeNull();
    expect(fromCertificate(socket('URI:spiffe://bulkhead/server/mail-mcp'), 'server')).toBeNull();
    expect(fromCertificate(socket('URI:spiffe://bulkhead/server/crm-mcp, URI:spiffe://bulkhead/operator/ops'), 'server')).toBeNull();
    expect(fromCertificate(socket('URI:"spiffe://bulkhead/server/x,y", URI:spiffe://bulkhead/server/crm-mcp'), 'server')).toBeNull();
    expect(fromCertificate(socket(undefined), 'server')).toBeNull();
    expect(fromCertificate({ socket: {} }, 'server')).toBeNull();
  });

  it('accepts only the exact form: other trust domains, paths, quoting and CN tricks name nobody', () => {
    for (const san of [
      'URI:spiffe://other/server/crm-mcp',
      'URI:spiffe://bulkhead/server/crm-mcp/extra',
      'URI:spiffe://bulkhead/server/crm-mcp?x=1',
      'URI:"spiffe://bulkhead/server/crm-mcp, URI:spiffe://bulkhead/operator/ops"',
      'DNS:spiffe://bulkhead/server/crm-mcp',
      'URI:spiffe://bulkhead/tenant/acme',
    ]) {
      expect(identityFromSan(san)).toBeNull();
    }
  });

  it('refuses to mint a URI for an id outside the policy id alphabet', () => {
    expect(identityUri('server', 'crm-mcp')).toBe('spiffe://bulkhead/server/crm-mcp');
    expect(() => identityUri('server', '../ops')).toThrow();
    expect(() => identityUri('operator', 'a/b')).toThrow();
  });
});
