import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { isBrokerError } from '../../errors';
import type { BrokerMetrics } from '../../observability/metrics';
import { authorizationServerMetadata, INTROSPECTION_PATH, REVOCATION_PATH } from '../../tokens/metadata';
import { OAuthError } from '../../tokens/oauth-error';
import type { TokenIntrospection } from '../../tokens/token-introspection';
import type { TokenService } from '../../tokens/token-service';

export interface TokenRouteDeps {
  tokens: Pick<TokenService, 'grant'>;
  introspection: TokenIntrospection;
  jwks: () => unknown;
  issuer: string;
  /** Whether client_id may be a Client ID Metadata Document URL (advertised in the metadata). */
  clientMetadataDocuments: boolean;
  metrics: BrokerMetrics;
  logger: Logger;
}

/** The OAuth 2.0 token endpoint (RFC 6749 / 8693) and the documents clients discover it by. */
export function tokenRoutes(deps: TokenRouteDeps): Router {
  const router = Router();

  router.post('/v1/token', async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Pragma', 'no-cache');
    try {
      if (Array.isArray(req.body)) throw new OAuthError('invalid_request', 'request body must be a form or a JSON object');
      const params = req.body && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {};
      const answer = await deps.tokens.grant(params, basicCredentials(req));
      deps.metrics.tokensIssued.inc({ grant: grantLabel(params.grant_type) });
      res.json(answer);
    } catch (err) {
      const { status, body } = oauthErrorBody(err, String(res.locals.requestId));
      res.locals.reason = body.error;
      if (!(err instanceof OAuthError)) deps.logger.warn({ err, requestId: res.locals.requestId }, 'token endpoint failed');
      deps.metrics.tokenErrors.inc({ error: body.error });
      if (status === 401 && req.headers.authorization !== undefined) res.setHeader('WWW-Authenticate', 'Basic realm="bulkhead"');
      if (status === 503) res.setHeader('Retry-After', '1');
      res.status(status).json(body);
    }
  });

  /** RFC 7662, for a registered MCP server (server key, checked in front of this route). */
  router.post(INTROSPECTION_PATH, async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    try {
      res.json(await deps.introspection.introspect(String(res.locals.server), paramsOf(req.body)));
    } catch (err) {
      sendOAuthError(req, res, err);
    }
  });

  /** RFC 7009, for the client the token was issued to. */
  router.post(REVOCATION_PATH, async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    try {
      await deps.introspection.revoke(paramsOf(req.body), basicCredentials(req));
      res.status(200).end();
    } catch (err) {
      sendOAuthError(req, res, err);
    }
  });

  function sendOAuthError(req: Request, res: Response, err: unknown): void {
    const { status, body } = oauthErrorBody(err, String(res.locals.requestId));
    res.locals.reason = body.error;
    if (!(err instanceof OAuthError)) deps.logger.warn({ err, requestId: res.locals.requestId }, 'token endpoint failed');
    if (status === 401 && req.headers.authorization?.startsWith('Basic ')) res.setHeader('WWW-Authenticate', 'Basic realm="bulkhead"');
    if (status === 503) res.setHeader('Retry-After', '1');
    res.status(status).json(body);
  }

  router.get('/.well-known/jwks.json', (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=60');
    res.json(deps.jwks());
  });

  router.get('/.well-known/oauth-authorization-server', (_req, res) => {
    res.json(authorizationServerMetadata(deps.issuer, { clientMetadataDocuments: deps.clientMetadataDocuments }));
  });

  return router;
}

/**
 * RFC 6749 error bodies. Revocation state or a tenant IdP being unreachable is a 503
 * `temporarily_unavailable`: the token is refused (fail closed), and the client may retry.
 */
function oauthErrorBody(err: unknown, requestId: string): { status: number; body: { error: string; error_description: string } } {
  if (err instanceof OAuthError) return { status: err.status, body: { error: err.error, error_description: err.error_description } };
  if (isBrokerError(err) && err.status === 503) return { status: 503, body: { error: 'temporarily_unavailable', error_description: err.message } };
  return { status: 500, body: { error: 'server_error', error_description: `internal error (request id ${requestId})` } };
}

/**
 * RFC 6749 §2.3.1: client id and secret are form-urlencoded inside the Basic credentials. Any other
 * Authorization header (a Bearer server key, an access token) is a credential this endpoint does not
 * take: refused, never ignored, so nobody mistakes it for authentication that happened.
 */
function basicCredentials(req: Request): { id: string; secret: string } | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  if (!header.startsWith('Basic ')) throw new OAuthError('invalid_client', 'client authentication failed (use HTTP Basic or client_secret in the body)', 401);
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new OAuthError('invalid_client', 'client authentication failed', 401);
  try {
    return { id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')), secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')) };
  } catch {
    throw new OAuthError('invalid_client', 'client authentication failed', 401);
  }
}

function paramsOf(body: unknown): Record<string, unknown> {
  if (Array.isArray(body)) throw new OAuthError('invalid_request', 'request body must be a form or a JSON object');
  return body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
}

function grantLabel(grant: unknown): string {
  if (grant === 'authorization_code') return 'authorization_code';
  if (grant === 'client_credentials') return 'client_credentials';
  if (grant === 'urn:ietf:params:oauth:grant-type:token-exchange') return 'token_exchange';
  if (grant === 'urn:ietf:params:oauth:grant-type:jwt-bearer') return 'jwt_bearer';
  return 'other';
}
