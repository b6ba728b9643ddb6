import { boundedCheck, describeError, READY } from '../../../src/observability/readiness';

/** A readiness check never hangs /readyz, and what it reports names the backend and what it saw. */
describe('boundedCheck', () => {
  it('passes a ready answer through', async () => {
    expect(await boundedCheck(async () => READY, 1000, 'redis')).toEqual({ ok: true });
  });

  it('turns a hung check into "not ready" once its bound is over, labelled', async () => {
    expect(await boundedCheck(() => new Promise(() => undefined), 20, 'postgres')).toEqual({ ok: false, problem: 'postgres: no answer within 20 ms' });
  });

  it('turns a thrown error into its code and first line, labelled', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379\n    at stack'), { code: 'ECONNREFUSED' });
    expect(await boundedCheck(() => Promise.reject(refused), 1000, 'redis')).toEqual({ ok: false, problem: 'redis: connect ECONNREFUSED 127.0.0.1:6379' });
    expect(describeError(Object.assign(new Error('Connection is closed.'), { code: 'EPIPE' }))).toBe('EPIPE: Connection is closed.');
  });
});
