import type { Request } from 'express';
import { manualClock } from '../../../src/clock';
import { proofHolds } from '../../../src/console/console-guard';
import { createConsoleSessions } from '../../../src/console/console-sessions';
import { parsePrometheusText, sampleOf } from '../../../src/console/metrics-history';

/** Console sessions end on their own: idle, at their lifetime, when their proof changes, and past a bound. */
describe('console sessions', () => {
  const plainRequest = { socket: {} } as unknown as Request;

  it('ends a session after the idle timeout, and every session at its lifetime however busy', () => {
    const clock = manualClock(1_000_000);
    const sessions = createConsoleSessions({ clock, idleMs: 10_000, lifetimeMs: 30_000 });
    const idle = sessions.create('ops', 'token:aa').id;
    const busy = sessions.create('ops', 'token:aa').id;
    clock.advance(9_000);
    expect(sessions.touch(busy)).not.toBeNull();
    clock.advance(1_000);
    expect(sessions.touch(idle)).toBeNull();
    expect(sessions.touch(busy)).not.toBeNull();
    for (let i = 0; i < 2; i++) {
      clock.advance(9_000);
      expect(sessions.touch(busy)).not.toBeNull();
    }
    clock.advance(2_000);
    expect(sessions.touch(busy)).toBeNull();
  });

  it('keeps only a hash of the id: the id is unguessable, and a mangled or foreign value finds nothing', () => {
    const sessions = createConsoleSessions({ clock: manualClock() });
    const { id, session } = sessions.create('ops', 'token:aa');
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(id).not.toBe(session.csrf);
    for (const wrong of [undefined, '', id.slice(1), `${id}x`, id.toUpperCase(), session.csrf]) expect(sessions.touch(wrong)).toBeNull();
    sessions.end(id);
    expect(sessions.touch(id)).toBeNull();
  });

  it('compares CSRF tokens in constant time and only exactly', () => {
    const sessions = createConsoleSessions({ clock: manualClock() });
    const { session } = sessions.create('ops', 'token:aa');
    expect(sessions.csrfMatches(session, session.csrf)).toBe(true);
    for (const wrong of [undefined, '', session.csrf.slice(1), `${session.csrf} `]) expect(sessions.csrfMatches(session, wrong)).toBe(false);
  });

  it('drops the oldest sign-ins beyond the bound', () => {
    const sessions = createConsoleSessions({ clock: manualClock(), maxSessions: 3 });
    const ids = [1, 2, 3, 4].map(() => sessions.create('ops', 'token:aa').id);
    expect(sessions.size).toBe(3);
    expect(ids.map((id) => sessions.touch(id) !== null)).toEqual([false, true, true, true]);
  });

  it("ends a session whose operator was removed or whose token changed (a policy reload), and never accepts another operator's digest", () => {
    const session = { operator: 'ops', proof: 'token:aa', csrf: 'x', createdAt: 0, expiresAt: 1, lastSeen: 0 };
    expect(proofHolds(plainRequest, session, { digests: () => ({ ops: 'aa' }) })).toBe(true);
    expect(proofHolds(plainRequest, session, { digests: () => ({ ops: 'bb' }) })).toBe(false);
    expect(proofHolds(plainRequest, session, { digests: () => ({ other: 'aa' }) })).toBe(false);
    expect(proofHolds(plainRequest, { ...session, operator: 'constructor' }, { digests: () => ({}) })).toBe(false);
    // A certificate session needs the same verified certificate on every request.
    expect(proofHolds(plainRequest, { ...session, proof: 'certificate' }, { digests: () => ({ ops: 'aa' }), fromCertificate: () => 'ops' })).toBe(false);
  });
});

describe('metrics samples for the charts', () => {
  it('reads the Prometheus text /metrics serves, summing histogram buckets over decisions and keeping only bounded labels', () => {
    const text = [
      '# HELP bulkhead_authorize_decisions_total x',
      'bulkhead_authorize_decisions_total{decision="allow",reason="allow"} 5',
      'bulkhead_authorize_decisions_total{decision="deny",reason="tenant_override"} 2',
      'bulkhead_authorize_duration_seconds_bucket{le="0.001",decision="allow"} 3',
      'bulkhead_authorize_duration_seconds_bucket{le="0.001",decision="deny"} 1',
      'bulkhead_authorize_duration_seconds_bucket{le="+Inf",decision="allow"} 5',
      'bulkhead_authorize_duration_seconds_count{decision="allow"} 5',
      'bulkhead_authorize_duration_seconds_count{decision="deny"} 2',
      'bulkhead_signing_key_age_seconds{state="current"} 12.5',
      'bulkhead_next_rotation_seconds{kind="signing_key"} 86000',
      'bulkhead_policy_info{version="abc\\"d"} 1',
    ].join('\n');
    expect(sampleOf(7, parsePrometheusText(text))).toEqual({
      t: 7,
      decisions: { 'allow/allow': 5, 'deny/tenant_override': 2 },
      latency: [[0.001, 4]],
      latencyCount: 7,
      keyAge: { current: 12.5 },
      nextRotation: { signing_key: 86000 },
      certificateAge: {},
    });
    expect(parsePrometheusText(text).find((l) => l.name === 'bulkhead_policy_info')?.labels.version).toBe('abc"d');
  });
});
