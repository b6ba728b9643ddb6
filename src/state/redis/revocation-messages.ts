import type { RevocationChange } from '../revocation-mirror';
import type { FeedSigner } from './feed-signer';

/**
 * The wire format of the revocation feed: a change (`{id, key, active, version, notBefore?, mac}`) and a replica's
 * acknowledgement of it (`{id, replica, mac}`), both JSON and both signed. Decoding returns null for
 * anything malformed or unsigned, so the feed treats a forged message exactly like a lost one.
 */
export interface ChangeMessage extends RevocationChange {
  /** Random per publish; acknowledgements name it. */
  id: string;
}

export interface RevocationMessages {
  encodeChange(message: ChangeMessage): string;
  decodeChange(text: string): ChangeMessage | null;
  encodeAck(id: string, replica: string): string;
  decodeAck(text: string): { id: string; replica: string } | null;
}

export function createRevocationMessages(signer: FeedSigner): RevocationMessages {
  // notBefore and expiresAt are signed too (a forged one could resurrect old tokens or end a revocation
  // early); absent, the fields are as before. Tagged, so one cannot be passed off as the other.
  const changeFields = (m: ChangeMessage) => [
    'change',
    m.id,
    m.key,
    String(m.active),
    String(m.version),
    ...(m.notBefore === undefined ? [] : [String(m.notBefore)]),
    ...(m.expiresAt === undefined ? [] : [`expires:${m.expiresAt}`]),
  ];
  const ackFields = (id: string, replica: string) => ['ack', id, replica];

  return {
    encodeChange: (m) => JSON.stringify({ id: m.id, key: m.key, active: m.active, version: m.version, notBefore: m.notBefore, expiresAt: m.expiresAt, mac: signer.sign(changeFields(m)) }),

    decodeChange(text) {
      const v = parse(text);
      if (!v || typeof v.id !== 'string' || typeof v.key !== 'string' || typeof v.active !== 'boolean' || typeof v.mac !== 'string') return null;
      if (typeof v.version !== 'number' || !Number.isSafeInteger(v.version)) return null;
      if (v.notBefore !== undefined && (typeof v.notBefore !== 'number' || !Number.isSafeInteger(v.notBefore))) return null;
      if (v.expiresAt !== undefined && (typeof v.expiresAt !== 'number' || !Number.isSafeInteger(v.expiresAt))) return null;
      const message: ChangeMessage = {
        id: v.id,
        key: v.key,
        active: v.active,
        version: v.version,
        ...(v.notBefore === undefined ? {} : { notBefore: v.notBefore }),
        ...(v.expiresAt === undefined ? {} : { expiresAt: v.expiresAt }),
      };
      return signer.verify(changeFields(message), v.mac) ? message : null;
    },

    encodeAck: (id, replica) => JSON.stringify({ id, replica, mac: signer.sign(ackFields(id, replica)) }),

    decodeAck(text) {
      const v = parse(text);
      if (!v || typeof v.id !== 'string' || typeof v.replica !== 'string' || typeof v.mac !== 'string') return null;
      return signer.verify(ackFields(v.id, v.replica), v.mac) ? { id: v.id, replica: v.replica } : null;
    },
  };
}

function parse(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
