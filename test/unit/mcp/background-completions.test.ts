import type { Allow, BrokerClient, CompleteAnswer, Deny } from '../../../src/mcp/broker-client';
import { createBackgroundCompletions } from '../../../src/mcp/background-completions';

/**
 * The retry rule of completions sent after the result: retried while the broker says it could not
 * record them (audit_unavailable, state_unavailable, or no answer), never for an answer that will not
 * change (not_found), and not past the call's expiry. The broker here is a script of answers, because
 * the point is the sequence of asks; the e2e suite (mcp-background-completions) runs the real one.
 */

const deny = (reason: string): Deny => ({ decision: 'deny', reason: reason as Deny['reason'], message: reason });

function scripted(answers: Array<CompleteAnswer | Deny>) {
  const asked: string[] = [];
  const broker = {
    complete: async (request: { call_id: string }) => {
      asked.push(request.call_id);
      return answers.shift() ?? { quarantined: false };
    },
  } as unknown as BrokerClient;
  return { broker, asked };
}

const call = (expiresInMs: number): Allow => ({ call_id: 'c1', tenant: 'acme', tool: 't', expires_at: new Date(Date.now() + expiresInMs).toISOString() }) as Allow;

it('asks again while the broker could not record it, and stops once it did', async () => {
  const { broker, asked } = scripted([deny('audit_unavailable'), deny('broker_unavailable'), deny('state_unavailable'), { quarantined: false }]);
  const completions = createBackgroundCompletions(broker);
  completions.send(call(60_000), 'success');
  await completions.inFlight('acme');
  expect(asked).toEqual(['c1', 'c1', 'c1', 'c1']);
  expect(completions.inFlight('acme')).toBeUndefined();
});

it('does not ask again for an answer that will not change, and warns', async () => {
  const { broker, asked } = scripted([deny('not_found')]);
  const warned: unknown[] = [];
  const completions = createBackgroundCompletions(broker, { logger: { info: () => undefined, warn: (obj) => warned.push(obj) } });
  completions.send(call(60_000), 'error');
  await completions.inFlight('acme');
  expect(asked).toHaveLength(1);
  expect(warned).toEqual([expect.objectContaining({ call_id: 'c1', reason: 'not_found' })]);
});

it('gives up at the call expiry (the broker closes the call itself then)', async () => {
  const { broker, asked } = scripted(Array.from({ length: 100 }, () => deny('audit_unavailable')));
  const completions = createBackgroundCompletions(broker);
  completions.send(call(120), 'success');
  await completions.inFlight('acme');
  expect(asked.length).toBeGreaterThan(1);
  expect(asked.length).toBeLessThan(10);
});

it('drain stops retrying what has not landed by its deadline', async () => {
  const { broker, asked } = scripted(Array.from({ length: 1000 }, () => deny('audit_unavailable')));
  const completions = createBackgroundCompletions(broker);
  completions.send(call(60_000), 'success');
  await completions.drain(100);
  const settled = completions.inFlight('acme');
  if (settled !== undefined) await settled;
  const asks = asked.length;
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(asked.length).toBe(asks);
});
