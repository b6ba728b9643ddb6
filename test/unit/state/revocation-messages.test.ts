import { randomBytes } from 'node:crypto';
import { createFeedSigner } from '../../../src/state/redis/feed-signer';
import { createRevocationMessages } from '../../../src/state/redis/revocation-messages';

/** A revocation's expiry travels signed: whoever can publish to Redis cannot shorten, lengthen or drop it. */
describe('revocation feed messages carry a signed expiry', () => {
  const messages = createRevocationMessages(createFeedSigner(randomBytes(32)));
  const change = { id: 'm1', key: 'principal:acme/acme-agent', active: true, version: 3, expiresAt: 1_700_000_060_000 };

  it('round-trips a change with an expiry, and one without', () => {
    expect(messages.decodeChange(messages.encodeChange(change))).toEqual(change);
    const { expiresAt: _dropped, ...permanent } = change;
    expect(messages.decodeChange(messages.encodeChange(permanent))).toEqual(permanent);
  });

  it.each([
    ['an earlier expiry', (m: any) => ({ ...m, expiresAt: 1 })],
    ['a later expiry', (m: any) => ({ ...m, expiresAt: m.expiresAt + 1 })],
    ['the expiry removed', ({ expiresAt: _e, ...m }: any) => m],
    ['the expiry moved into notBefore', ({ expiresAt, ...m }: any) => ({ ...m, notBefore: expiresAt })],
    ['an expiry that is not an integer', (m: any) => ({ ...m, expiresAt: '1700000060000' })],
  ])('refuses a message with %s', (_label, tamper) => {
    const wire = JSON.parse(messages.encodeChange(change));
    expect(messages.decodeChange(JSON.stringify(tamper(wire)))).toBeNull();
  });

  it('refuses an expiry added to a permanent revocation', () => {
    const { expiresAt: _e, ...permanent } = change;
    const wire = JSON.parse(messages.encodeChange(permanent));
    expect(messages.decodeChange(JSON.stringify({ ...wire, expiresAt: 5 }))).toBeNull();
  });
});
