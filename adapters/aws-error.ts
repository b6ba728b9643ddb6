import { deadlineBound } from '../src/deadline';
import { networkCode, statusWord, UpstreamFailure } from './upstream-failure';

/**
 * AWS SDK errors carry AWS's message text, which can quote ARNs, account ids and policy details. Keep
 * the operation, the reference, the HTTP status and the error's type name (ResourceNotFoundException,
 * AccessDeniedException, TimeoutError — a fixed vocabulary, safe to log); drop the message.
 */
export function awsFailure(operation: string, ref: string, err: unknown): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata?.httpStatusCode;
  if (typeof status === 'number') {
    const name = err instanceof Error ? err.name : 'Error';
    return new UpstreamFailure(`aws ${operation} ${ref}: ${statusWord(status)} (${name})`, { statusCode: status, code: name });
  }
  const code = networkCode(err);
  const bound = deadlineBound(err);
  return new UpstreamFailure(`aws ${operation} ${ref}: no answer (${bound ?? code})`, { code, bound });
}
