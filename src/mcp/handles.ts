import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../clock';

/**
 * Handles a tool mints: opaque strings that stand for a value the server keeps meaning to (a cursor, a
 * file id, a draft) and that the client presents back on a later call, maybe to another tool, maybe on
 * another replica. A handle is only as good as the identity it was minted for: `resolve` gives the value
 * back only to the same tenant and principal (and, if minted with `scope: 'session'`, the same Bulkhead
 * session), so acme's cursor presented by globex, or by another acme principal, is refused.
 *
 * Stateless, so it holds across replicas and the v2 entry's per-request servers: the value is sealed
 * with AES-256-GCM under a key derived from the server key, and the identity it is bound to is the
 * AEAD's associated data, not part of the ciphertext. Presented by anyone else, the tag does not verify:
 * there is no stored map to probe, and nothing distinguishes "another tenant's" from "forged" or
 * "expired" — every refusal is the same `handle_invalid`. The value is encrypted, so a handle tells
 * the client nothing about what it stands for.
 *
 *   const { handles } = bulkheadCall(ctx);
 *   const cursor = handles.mint({ table: 'deals', offset: 100 }, { kind: 'cursor' });
 *   …later, any tool of this server…
 *   const { table, offset } = handles.resolve(args.cursor, { kind: 'cursor' });
 */

export type HandleScope = 'principal' | 'session';

export interface MintOptions {
  /** How long the handle resolves; default (and most) as configured, 1 hour unless set. */
  ttlSeconds?: number;
  /** `principal` (default): any call of the same tenant + principal. `session`: of the same Bulkhead session too. */
  scope?: HandleScope;
  /** A label the resolving side must name too, so a handle minted as one thing is not accepted as another. */
  kind?: string;
}

export interface CallHandles {
  /** A handle for `value` (anything JSON can carry, at most 4 KiB as JSON), bound to this call's tenant and principal. */
  mint(value: unknown, options?: MintOptions): string;
  /** The value behind a handle minted for this caller; throws `BulkheadHandleError` (`handle_invalid`) otherwise. */
  resolve<T = unknown>(handle: unknown, options?: { kind?: string }): T;
}

export interface HandleIdentity {
  tenant: string;
  principal: string;
  session: string;
}

export interface HandleCodec {
  for(identity: HandleIdentity): CallHandles;
}

/** Thrown by `resolve`; the wrapper turns it into a `handle_invalid` result, and the call is recorded as an error. */
export class BulkheadHandleError extends Error {
  readonly reason = 'handle_invalid' as const;
  constructor() {
    super('the handle is not valid for this caller (unknown, altered, expired, or minted for another tenant, principal or session)');
    this.name = 'BulkheadHandleError';
  }
}

const PREFIX = 'bh1.';
const MAX_VALUE_BYTES = 4096;
const MAX_HANDLE_LENGTH = PREFIX.length + Math.ceil(((2 + 12 + MAX_VALUE_BYTES + 64 + 16) * 4) / 3);
const KIND = /^[A-Za-z0-9._:-]{1,64}$/;
const SCOPES: readonly HandleScope[] = ['principal', 'session'];

export function createHandleCodec(options: { serverKey: string; key?: Uint8Array | string; ttlSeconds?: number; clock?: Clock }): HandleCodec {
  const root = options.key ?? options.serverKey;
  const key = Buffer.from(hkdfSync('sha256', Buffer.from(root), Buffer.alloc(0), Buffer.from('bulkhead/mcp handles v1'), 32));
  const maxTtl = options.ttlSeconds ?? 3600;
  const clock = options.clock ?? systemClock;

  /** Who may resolve: the AEAD's associated data. Ids never contain NUL (policy ids, UUIDs). */
  const boundTo = (identity: HandleIdentity, scope: HandleScope, kind: string): Buffer =>
    Buffer.from(['bulkhead/mcp handle v1', scope, kind, identity.tenant, identity.principal, scope === 'session' ? identity.session : ''].join('\0'));

  return {
    for(identity) {
      return {
        mint(value, mintOptions = {}) {
          const scope = mintOptions.scope ?? 'principal';
          const kind = mintOptions.kind ?? 'handle';
          if (!SCOPES.includes(scope)) throw new TypeError('bulkhead: handle scope must be "principal" or "session"');
          if (!KIND.test(kind)) throw new TypeError('bulkhead: handle kind must be 1-64 letters, digits, ".", "_", ":" or "-"');
          const ttl = Math.min(mintOptions.ttlSeconds ?? maxTtl, maxTtl);
          if (!(ttl >= 1)) throw new TypeError('bulkhead: a handle lives at least 1 second');
          const json = JSON.stringify({ x: value, e: Math.floor(clock.now() / 1000) + Math.floor(ttl) });
          if (Buffer.byteLength(json) > MAX_VALUE_BYTES + 64) throw new RangeError(`bulkhead: a handle carries at most ${MAX_VALUE_BYTES} bytes of JSON`);
          const iv = randomBytes(12);
          const cipher = createCipheriv('aes-256-gcm', key, iv);
          cipher.setAAD(boundTo(identity, scope, kind));
          const sealed = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()]);
          const header = Buffer.from([1, SCOPES.indexOf(scope)]);
          return PREFIX + Buffer.concat([header, iv, sealed, cipher.getAuthTag()]).toString('base64url');
        },

        resolve<T>(handle: unknown, resolveOptions: { kind?: string } = {}): T {
          const kind = resolveOptions.kind ?? 'handle';
          if (typeof handle !== 'string' || !handle.startsWith(PREFIX) || handle.length > MAX_HANDLE_LENGTH || !KIND.test(kind)) throw new BulkheadHandleError();
          const text = handle.slice(PREFIX.length);
          const raw = Buffer.from(text, 'base64url');
          const scope = SCOPES[raw[1] ?? -1];
          // One spelling per handle: a decoder that skips stray characters would accept many texts for one seal.
          if (raw.toString('base64url') !== text || raw.length < 2 + 12 + 16 + 1 || raw[0] !== 1 || scope === undefined) throw new BulkheadHandleError();
          let json: string;
          try {
            const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(2, 14));
            decipher.setAAD(boundTo(identity, scope, kind));
            decipher.setAuthTag(raw.subarray(raw.length - 16));
            json = Buffer.concat([decipher.update(raw.subarray(14, raw.length - 16)), decipher.final()]).toString('utf8');
          } catch {
            throw new BulkheadHandleError();
          }
          const payload = JSON.parse(json) as { x: T; e: number };
          if (Math.floor(clock.now() / 1000) >= payload.e) throw new BulkheadHandleError();
          return payload.x;
        },
      };
    },
  };
}
