import { DeadlineExceeded, deadlineBound, isDeadlineExceeded, settleBy, startDeadline, withDeadline } from '../../../src/deadline';

/**
 * The one deadline mechanism: which bound fired is always named, the earliest of the deadline and its
 * parent wins, and a finished deadline leaves nothing behind on a long-lived parent signal.
 */
describe('deadline', () => {
  test('aborts with a DeadlineExceeded that names its bound', async () => {
    const deadline = startDeadline(5, 'vault client timeout');
    await new Promise((resolve) => deadline.signal.addEventListener('abort', resolve));
    expect(deadline.signal.reason).toBeInstanceOf(DeadlineExceeded);
    expect(deadline.signal.reason).toMatchObject({ name: 'TimeoutError', bound: 'vault client timeout' });
  });

  test('a deadline already past aborts at once', () => {
    expect(startDeadline(0, 'audit commit').signal.aborted).toBe(true);
    expect(startDeadline(-20, 'audit commit').signal.reason).toMatchObject({ bound: 'audit commit' });
  });

  test("the parent's abort wins when it comes first, with the parent's reason", () => {
    const parent = new AbortController();
    const deadline = startDeadline(60_000, 'inner');
    const joined = startDeadline(60_000, 'inner', parent.signal);
    parent.abort(new Error('caller gave up'));
    expect(joined.signal.reason).toMatchObject({ message: 'caller gave up' });
    expect(deadline.signal.aborted).toBe(false);
    deadline.cancel();
  });

  test('cancel leaves no listener on the parent and never aborts', () => {
    const parent = new AbortController();
    let listeners = 0;
    const add = parent.signal.addEventListener.bind(parent.signal);
    const remove = parent.signal.removeEventListener.bind(parent.signal);
    parent.signal.addEventListener = ((...args: Parameters<typeof add>) => (listeners++, add(...args))) as typeof add;
    parent.signal.removeEventListener = ((...args: Parameters<typeof remove>) => (listeners--, remove(...args))) as typeof remove;
    const deadline = startDeadline(60_000, 'inner', parent.signal);
    expect(listeners).toBe(1);
    deadline.cancel();
    expect(listeners).toBe(0);
    parent.abort();
    expect(deadline.signal.aborted).toBe(false);
  });

  test('withDeadline releases the caller even if the work ignores its signal', async () => {
    const never = new Promise<string>(() => undefined);
    const err = await withDeadline(5, 'upstream budget', undefined, () => never).catch((e: unknown) => e);
    expect(isDeadlineExceeded(err, 'upstream budget')).toBe(true);
    expect(deadlineBound(new Error('wrapped', { cause: err }))).toBe('upstream budget');
  });

  test('settleBy passes the outcome through when the signal stays quiet', async () => {
    const controller = new AbortController();
    await expect(settleBy(Promise.resolve(7), controller.signal)).resolves.toBe(7);
    await expect(settleBy(Promise.reject(new Error('no')), controller.signal)).rejects.toThrow('no');
  });
});
