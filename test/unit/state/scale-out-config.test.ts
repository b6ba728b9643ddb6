import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { state } from '../../../src/cli/state';
import { UsageError } from '../../../src/cli/usage-error';
import { parsePolicy, PolicyError } from '../../../src/policy/load';
import { describeUrl } from '../../../src/state/safe-url';

/** Scale-out is chosen by config; half a config is an error that names the missing field. */
describe('scale-out configuration', () => {
  test('redis_url without postgres_url (or the reverse) is refused, naming the missing field', () => {
    expect(() => parsePolicy({ broker: { state: { redis_url: 'redis://127.0.0.1:6379' } } }, 'p.yaml')).toThrow(PolicyError);
    expect(() => parsePolicy({ broker: { state: { redis_url: 'redis://127.0.0.1:6379' } } }, 'p.yaml')).toThrow(/^p\.yaml: broker\.state\.postgres_url: is required with redis_url/);
    expect(() => parsePolicy({ broker: { state: { postgres_url: 'postgres://u@h/db' } } }, 'p.yaml')).toThrow(/broker\.state\.redis_url: is required with postgres_url/);
  });

  test('both URLs select scale-out with the default key prefix; neither keeps the embedded default', () => {
    const shared = parsePolicy({ broker: { state: { redis_url: 'redis://127.0.0.1:6379', postgres_url: 'postgres://u@127.0.0.1/db' } } });
    expect(shared.broker.state).toEqual({ redis_url: 'redis://127.0.0.1:6379', postgres_url: 'postgres://u@127.0.0.1/db', redis_prefix: 'bulkhead' });
    expect(parsePolicy({}).broker.state.redis_url).toBeUndefined();
    expect(() => parsePolicy({ broker: { state: { redis_url: 'redis://h', postgres_url: 'postgres://h/d', redis_prefix: 'a:b' } } })).toThrow(/broker\.state\.redis_prefix/);
  });

  test('state init without a scale-out policy is a usage error naming the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bulkhead-state-'));
    try {
      const file = join(dir, 'policy.json');
      await writeFile(file, JSON.stringify({}));
      await expect(state(['init', '--config', file])).rejects.toThrow(UsageError);
      await expect(state(['init', '--config', file])).rejects.toThrow(/broker\.state\.postgres_url: required/);
      await expect(state(['init'])).rejects.toThrow(/--config FILE is required/);
      await expect(state(['migrate'])).rejects.toThrow(/unknown action/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('URLs are described without their password', () => {
    expect(describeUrl('postgres://bulkhead:s3cret@db.internal:5432/bulkhead')).toBe('postgres://db.internal:5432/bulkhead');
    expect(describeUrl('redis://:s3cret@cache:6379/0')).toBe('redis://cache:6379/0');
    expect(describeUrl('not a url s3cret')).toBe('(unparsable URL)');
  });
});
