import type { ZodType } from 'zod';
import { BrokerError } from '../errors';
import { describeIssues } from '../policy/load';

/** Validates a request body with one zod schema; the 400 names the first field at fault. */
export function parseBody<T>(schema: ZodType<T, unknown>, body: unknown): T {
  // No body at all reads as `{}`, so the answer names the first missing field instead.
  if (body === undefined) body = {};
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new BrokerError('bad_request', 'request body must be a JSON object');
  }
  const result = schema.safeParse(body);
  // A rule about the whole body (exactly one of…) reads as itself, not as "(root): …".
  if (!result.success) throw new BrokerError('bad_request', describeIssues(result.error, body)[0]!.replace(/^\(root\): /, ''));
  return result.data;
}
