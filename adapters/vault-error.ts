import { deadlineBound } from '../src/deadline';
import { networkCode, statusWord, UpstreamFailure } from './upstream-failure';

/**
 * node-vault rejects with an ApiResponseError whose message is Vault's first error text and whose
 * `response.body` is the whole answer. Both can name paths and policies, so they are replaced here by
 * an UpstreamFailure that keeps the operation, the reference and the status only.
 */
export function vaultStatus(err: unknown): number | undefined {
  const status = (err as { response?: { statusCode?: unknown } } | undefined)?.response?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

export function vaultFailure(operation: string, ref: string, err: unknown): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  const status = vaultStatus(err);
  if (status !== undefined) return new UpstreamFailure(`vault ${operation} ${ref}: ${statusWord(status)}`, { statusCode: status });
  const code = networkCode(err);
  const bound = deadlineBound(err);
  return new UpstreamFailure(`vault ${operation} ${ref}: no answer (${bound ?? code})`, { code, bound });
}
