/**
 * An RFC 6749 §5.2 token endpoint error. `error_description` is public: it may name a request field,
 * never a presented secret or token. The HTTP layer turns this into `{error, error_description}`.
 */

export type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'invalid_scope' | 'invalid_target' | 'unsupported_grant_type' | 'unauthorized_client';

export class OAuthError extends Error {
  readonly error: OAuthErrorCode;
  readonly error_description: string;
  readonly status: 400 | 401;

  constructor(error: OAuthErrorCode, description: string, status?: 400 | 401, options: { cause?: unknown } = {}) {
    super(description, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OAuthError';
    this.error = error;
    this.error_description = description;
    this.status = status ?? (error === 'invalid_client' ? 401 : 400);
  }

  toJSON(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.error, error_description: this.error_description };
  }
}
