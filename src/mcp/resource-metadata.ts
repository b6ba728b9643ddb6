import { Router, type RequestHandler } from 'express';
import { metadataHandler } from '@modelcontextprotocol/sdk/server/auth/handlers/metadata.js';
import { getOAuthProtectedResourceMetadataUrl } from '@modelcontextprotocol/sdk/server/auth/router.js';
import type { OAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';

/**
 * RFC 9728 protected resource metadata for the MCP server: "I am this resource, and my tokens come
 * from Bulkhead". Served where the SDK's clients look for it (the path-specific well-known URL that
 * `getOAuthProtectedResourceMetadataUrl` names, which is also what 401 answers point to in their
 * `WWW-Authenticate` header).
 *
 * Bulkhead's issuer may be discovered from the broker, so the document is built on the first request
 * (concurrent first requests share one lookup; a failed lookup is a 503 and is retried next time).
 */

export interface ResourceMetadataOptions {
  /** The MCP endpoint's public URL, e.g. https://crm.example.com/mcp. */
  resourceUrl: URL;
  /** Bulkhead's issuer identifier. */
  issuer: () => Promise<string>;
  resourceName?: string;
  documentationUrl?: URL;
}

export function resourceMetadataUrl(resourceUrl: URL): string {
  return getOAuthProtectedResourceMetadataUrl(resourceUrl);
}

export function protectedResourceMetadata(resourceUrl: URL, issuer: string, extra: { resourceName?: string; documentationUrl?: URL } = {}): OAuthProtectedResourceMetadata {
  return {
    resource: resourceUrl.href,
    authorization_servers: [issuer],
    bearer_methods_supported: ['header'],
    // Tokens are EdDSA-signed JWTs; advertised so clients and reviewers know what to expect.
    resource_signing_alg_values_supported: ['EdDSA'],
    ...(extra.resourceName !== undefined ? { resource_name: extra.resourceName } : {}),
    ...(extra.documentationUrl !== undefined ? { resource_documentation: extra.documentationUrl.href } : {}),
    // No scopes_supported: scopes are tool names, per tenant, and are not advertised publicly.
  };
}

export function resourceMetadataRouter(options: ResourceMetadataOptions): Router {
  const router = Router();
  let handler: Promise<RequestHandler> | null = null;
  const build = () => {
    handler ??= options
      .issuer()
      .then((issuer) => metadataHandler(protectedResourceMetadata(options.resourceUrl, issuer, options)))
      .catch((err: unknown) => {
        handler = null;
        throw err;
      });
    return handler;
  };
  router.use(new URL(resourceMetadataUrl(options.resourceUrl)).pathname, async (req, res, next) => {
    let serve: RequestHandler;
    try {
      serve = await build();
    } catch {
      res.status(503).json({ error: 'temporarily_unavailable', error_description: 'the authorization server could not be reached' });
      return;
    }
    serve(req, res, next);
  });
  return router;
}
