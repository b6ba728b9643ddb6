import { manualClock } from '../../../src/clock';
import { BulkheadHandleError, createHandleCodec } from '../../../src/mcp/handles';

/** The handle seal on its own: lifetime, limits and what a mint refuses to make. The e2e suite covers who may resolve. */

const acme = { tenant: 'acme', principal: 'acme-agent', session: 's1' };

describe('handles (sealed to tenant + principal)', () => {
  it('resolves until its ttl and not after, and never past the configured most', () => {
    const clock = manualClock(1_800_000_000_000);
    const handles = createHandleCodec({ serverKey: 'k'.repeat(32), ttlSeconds: 600, clock }).for(acme);
    const short = handles.mint('v', { ttlSeconds: 60 });
    const long = handles.mint('v', { ttlSeconds: 86_400 });
    clock.advance(59_000);
    expect(handles.resolve(short)).toBe('v');
    clock.advance(1_000);
    expect(() => handles.resolve(short)).toThrow(BulkheadHandleError);
    clock.advance(540_000);
    expect(() => handles.resolve(long)).toThrow(BulkheadHandleError);
  });

  it('mints a different handle for the same value each time (no linking two handles by their text)', () => {
    const handles = createHandleCodec({ serverKey: 'k'.repeat(32) }).for(acme);
    expect(handles.mint({ id: 1 })).not.toBe(handles.mint({ id: 1 }));
  });

  it('refuses to mint oversize values, bad kinds, scopes and lifetimes', () => {
    const handles = createHandleCodec({ serverKey: 'k'.repeat(32) }).for(acme);
    expect(() => handles.mint('x'.repeat(5000))).toThrow(RangeError);
    expect(() => handles.mint('v', { kind: 'a b' })).toThrow(TypeError);
    expect(() => handles.mint('v', { scope: 'tenant' as never })).toThrow(TypeError);
    expect(() => handles.mint('v', { ttlSeconds: 0 })).toThrow(TypeError);
  });

  it('gives every refusal the same error, whatever the cause', () => {
    const codec = createHandleCodec({ serverKey: 'k'.repeat(32) });
    const handle = codec.for(acme).mint('v');
    const messages = new Set<string>();
    for (const attempt of [
      () => codec.for({ ...acme, tenant: 'globex' }).resolve(handle),
      () => codec.for({ ...acme, principal: 'acme-reader' }).resolve(handle),
      () => codec.for(acme).resolve(handle, { kind: 'other' }),
      () => codec.for(acme).resolve(`${handle}A`),
      () => codec.for(acme).resolve(42),
    ]) {
      try {
        attempt();
        throw new Error('resolved');
      } catch (err) {
        expect(err).toBeInstanceOf(BulkheadHandleError);
        messages.add((err as Error).message);
      }
    }
    expect(messages.size).toBe(1);
  });
});
