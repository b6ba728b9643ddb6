import type { TLSSocket } from 'node:tls';
import type { Policy } from '../src/policy/schema';

/**
 * Who a client certificate speaks for. The identity is one SAN URI, and the role is part of it:
 *   spiffe://bulkhead/server/<server id>      an MCP server (may call /v1/authorize, /v1/complete, …)
 *   spiffe://bulkhead/operator/<operator id>  an operator (may call the operator API)
 * so a server certificate can never act as an operator, whatever its CN says. A certificate with more
 * than one Bulkhead URI, or one that does not parse exactly, names nobody. The id must also be
 * registered in the policy now, so removing a server from the policy cuts off its certificate too.
 *
 * The caller (src/http/authenticate.ts) only asks once TLS has verified the chain (`socket.authorized`);
 * this checks it again so it is safe on its own.
 */

export type CertificateRole = 'server' | 'operator';

const TRUST_DOMAIN = 'bulkhead';
const ID = '[A-Za-z0-9][A-Za-z0-9._-]{0,63}';
const IDENTITY = new RegExp(`^URI:spiffe://${TRUST_DOMAIN}/(server|operator)/(${ID})$`);
const OURS = `URI:spiffe://${TRUST_DOMAIN}/`;

export function identityUri(role: CertificateRole, id: string): string {
  if (!new RegExp(`^${ID}$`).test(id)) throw new Error(`"${id}" is not a valid ${role} id`);
  return `spiffe://${TRUST_DOMAIN}/${role}/${id}`;
}

/**
 * Reads Node's `subjectaltname` string ("DNS:a, URI:b"). Node quotes any entry holding a comma or
 * another special character, so splitting on ", " cannot cut an entry; a quoted entry never matches.
 */
export function identityFromSan(subjectAltName: string | undefined): { role: CertificateRole; id: string } | null {
  if (!subjectAltName) return null;
  // A quoted entry of ours (URI:"spiffe://bulkhead/…") counts too, so it makes the certificate ambiguous.
  const ours = subjectAltName.split(', ').filter((entry) => entry.startsWith(OURS) || entry.startsWith(OURS.replace('URI:', 'URI:"')));
  if (ours.length !== 1) return null;
  const match = IDENTITY.exec(ours[0]!);
  return match ? { role: match[1] as CertificateRole, id: match[2]! } : null;
}

/** The `Identities.fromCertificate` hook: the registered id a verified client certificate names, or null. */
export function certificateIdentity(policy: () => Pick<Policy, 'servers' | 'operators'>): (req: { socket: unknown }, role: CertificateRole) => string | null {
  return (req, role) => {
    const socket = req.socket as Partial<TLSSocket>;
    if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return null;
    const identity = identityFromSan(socket.getPeerCertificate(false)?.subjectaltname);
    if (!identity || identity.role !== role) return null;
    const table = role === 'server' ? policy().servers : policy().operators;
    return Object.prototype.hasOwnProperty.call(table, identity.id) ? identity.id : null;
  };
}
