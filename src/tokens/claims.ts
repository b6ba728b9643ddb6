/**
 * What a Bulkhead access token says (DESIGN.md "Tokens"), and what a verified one is turned into.
 * Times in claims are JWT NumericDate (seconds); times in VerifiedToken are epoch milliseconds.
 */

export interface TokenClaims {
  iss: string;
  /** Principal. */
  sub: string;
  /**
   * The one MCP server this token is for: its server id, alone, or first followed by the RFC 8707
   * resource URL the client asked for (`[id, url]`), so RFC 9068 validators checking their URL and
   * Bulkhead checking the server id both find theirs.
   */
  aud: string | [string, string];
  /** RFC 9068 §2.2: the OAuth client the token was issued to. */
  client_id: string;
  /** Tenant. */
  tid: string;
  /** Session: kept across refreshes, so revoking it ends the whole chain. */
  sid: string;
  jti: string;
  /** Space-separated tool names. */
  scope: string;
  /**
   * When the session started (RFC 9068 / OIDC `auth_time`: the client authenticated then), kept across
   * refreshes. Every replica bounds the session by it alone, so it travels in the signed token.
   */
  auth_time: number;
  iat: number;
  nbf: number;
  exp: number;
}

/**
 * A token whose signature, issuer, type and lifetime were checked. Verified tokens may be shared from
 * the verifier's cache, so they are frozen: treat them as read-only.
 */
export interface VerifiedToken {
  readonly tenant: string;
  readonly principal: string;
  readonly session: string;
  readonly jti: string;
  /** The server id (`aud`, or its first entry). */
  readonly audience: string;
  /** The resource URL `aud` carries after the server id, when the client named the server by URL. */
  readonly resource?: string;
  readonly clientId: string;
  readonly scope: readonly string[];
  /** Epoch ms. */
  readonly issuedAt: number;
  /** Epoch ms: the session's start (`auth_time`; `iat` for tokens minted before the claim existed). */
  readonly sessionStartedAt: number;
  /** Epoch ms. */
  readonly expiresAt: number;
}

export function parseScope(scope: string): string[] {
  return [...new Set(scope.split(' ').filter((token) => token.length > 0))];
}

export function formatScope(tools: readonly string[]): string {
  return tools.join(' ');
}
