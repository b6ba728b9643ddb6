import { TOKEN_EXCHANGE_GRANT } from './token-exchange';

/**
 * RFC 8414 authorization server metadata, served at `/.well-known/oauth-authorization-server`.
 * `issuer` is returned exactly as configured: it must equal the `iss` of every token we sign.
 */

export interface AuthorizationServerMetadata {
  issuer: string;
  token_endpoint: string;
  jwks_uri: string;
  grant_types_supported: string[];
  token_endpoint_auth_methods_supported: string[];
  response_types_supported: string[];
}

export const TOKEN_PATH = '/v1/token';
export const JWKS_PATH = '/.well-known/jwks.json';

export function authorizationServerMetadata(issuerUrl: string): AuthorizationServerMetadata {
  const base = issuerUrl.replace(/\/+$/, '');
  return {
    issuer: issuerUrl,
    token_endpoint: base + TOKEN_PATH,
    jwks_uri: base + JWKS_PATH,
    grant_types_supported: ['client_credentials', TOKEN_EXCHANGE_GRANT],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    // No authorization endpoint: clients are machines holding client credentials or an IdP token.
    response_types_supported: [],
    // No scopes_supported: scopes are tool names, they differ per tenant and are not advertised publicly.
  };
}
