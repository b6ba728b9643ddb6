import { JWT_BEARER_GRANT } from './jwt-bearer-grant';
import { TOKEN_EXCHANGE_GRANT } from './token-exchange';

/**
 * RFC 8414 authorization server metadata, served at `/.well-known/oauth-authorization-server`.
 * `issuer` is returned exactly as configured: it must equal the `iss` of every token we sign, and the
 * `iss` of every authorization response (RFC 9207). What MCP clients look for is all here: an
 * authorization endpoint with code + S256 PKCE, the grants, and Client ID Metadata Documents.
 */

export interface AuthorizationServerMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  response_types_supported: string[];
  response_modes_supported: string[];
  grant_types_supported: string[];
  code_challenge_methods_supported: string[];
  token_endpoint_auth_methods_supported: string[];
  authorization_response_iss_parameter_supported: boolean;
  client_id_metadata_document_supported: boolean;
  introspection_endpoint: string;
  introspection_endpoint_auth_methods_supported: string[];
  revocation_endpoint: string;
  revocation_endpoint_auth_methods_supported: string[];
}

export const AUTHORIZE_PATH = '/authorize';
export const TOKEN_PATH = '/v1/token';
export const JWKS_PATH = '/.well-known/jwks.json';
export const INTROSPECTION_PATH = '/v1/token/introspect';
export const REVOCATION_PATH = '/v1/token/revoke';
export const AUTHORIZATION_CODE_GRANT = 'authorization_code';

export function authorizationServerMetadata(issuerUrl: string, options: { clientMetadataDocuments: boolean }): AuthorizationServerMetadata {
  const base = issuerUrl.replace(/\/+$/, '');
  return {
    issuer: issuerUrl,
    authorization_endpoint: base + AUTHORIZE_PATH,
    token_endpoint: base + TOKEN_PATH,
    jwks_uri: base + JWKS_PATH,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: [AUTHORIZATION_CODE_GRANT, 'client_credentials', TOKEN_EXCHANGE_GRANT, JWT_BEARER_GRANT],
    code_challenge_methods_supported: ['S256'],
    // `none`: public clients (static clients in policy, metadata documents) on the authorization_code grant.
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    authorization_response_iss_parameter_supported: true,
    client_id_metadata_document_supported: options.clientMetadataDocuments,
    introspection_endpoint: base + INTROSPECTION_PATH,
    // A registered MCP server's key, as a bearer token (the same credential as for /v1/authorize).
    introspection_endpoint_auth_methods_supported: ['bearer'],
    revocation_endpoint: base + REVOCATION_PATH,
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    // No scopes_supported: scopes are tool names, they differ per tenant and are not advertised publicly.
  };
}
