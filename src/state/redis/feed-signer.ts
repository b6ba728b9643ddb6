import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * Authenticates what replicas tell each other over Redis pub/sub. Anyone who can publish to Redis could
 * otherwise forge a "restore" that lifts a revocation in every replica's memory, or forge the
 * acknowledgements that let /v1/revoke answer before the replicas have applied the change. Replicas
 * already share the master key (they must, to open the sealed signing keys), so each message carries an
 * HMAC-SHA256 under a key derived from it for this one purpose; a message that does not verify is
 * treated like a lost one (the replica re-reads PostgreSQL).
 */
export interface FeedSigner {
  sign(fields: readonly string[]): string;
  verify(fields: readonly string[], mac: string): boolean;
}

export function createFeedSigner(masterKey: Buffer): FeedSigner {
  const key = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'bulkhead/redis-feed/v1', 32));
  // Length-prefixed, so ["ab", "c"] and ["a", "bc"] never sign the same bytes.
  const mac = (fields: readonly string[]) => {
    const h = createHmac('sha256', key);
    for (const field of fields) h.update(`${Buffer.byteLength(field)}:${field};`);
    return h.digest();
  };
  return {
    sign: (fields) => mac(fields).toString('base64url'),
    verify(fields, presented) {
      const expected = mac(fields);
      const given = Buffer.from(presented, 'base64url');
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
