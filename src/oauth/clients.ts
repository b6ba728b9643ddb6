import type { Policy } from '../policy/schema';
import { own } from '../tokens/grant-scope';
import { ClientMetadataError, isUrlClientId, type ClientMetadataResolver } from './client-metadata-document';

/**
 * Who may start an authorization code flow: a static client in policy (`clients.<id>`), or a client
 * whose id is the URL of its Client ID Metadata Document. Both are public clients: they prove nothing
 * by a secret, so what binds a code to them is the exact redirect URI and PKCE.
 */

export interface OAuthClient {
  clientId: string;
  redirectUris: readonly string[];
  kind: 'static' | 'metadata_document';
  /** A static client bound to one tenant: its users log in at that tenant's IdP, no questions asked. */
  tenant?: string;
  name?: string;
}

/** Why a client_id was not accepted; the message is safe to show to the person in the browser. */
export class UnknownClientError extends Error {
  constructor(
    message: string,
    /** The metadata document could not be read right now (503), as opposed to being refused (400). */
    readonly unavailable = false,
  ) {
    super(message);
    this.name = 'UnknownClientError';
  }
}

export function createClientRegistry(deps: { policy: () => Policy; metadata: ClientMetadataResolver }) {
  return {
    async resolve(clientId: string): Promise<OAuthClient> {
      const policy = deps.policy();
      if (isUrlClientId(clientId)) {
        if (!policy.broker.authorization.client_metadata.enabled) throw new UnknownClientError('client metadata documents are not accepted here');
        try {
          return await deps.metadata.resolve(clientId);
        } catch (err) {
          if (err instanceof ClientMetadataError) throw new UnknownClientError(err.message, err.failure === 'unavailable' || err.failure === 'rate_limited');
          throw err;
        }
      }
      const entry = own(policy.clients, clientId);
      if (!entry) throw new UnknownClientError('unknown client_id');
      return Object.freeze({
        clientId,
        redirectUris: entry.redirect_uris,
        kind: 'static' as const,
        ...(entry.tenant !== undefined ? { tenant: entry.tenant } : {}),
        ...(entry.name !== undefined ? { name: entry.name } : {}),
      });
    },
  };
}

export type ClientRegistry = ReturnType<typeof createClientRegistry>;

/**
 * RFC 9700 §4.1.3: exact string comparison, no normalisation, no prefix or pattern matching. The one
 * exception is RFC 8252 §7.3: a registered loopback IP URI without a port (`http://127.0.0.1/callback`)
 * admits any port, because a native app listens wherever the OS lets it; everything else still matches
 * exactly, character for character.
 */
export function redirectUriRegistered(client: OAuthClient, redirectUri: string): boolean {
  if (client.redirectUris.includes(redirectUri)) return true;
  const withoutPort = /^http:\/\/(127\.0\.0\.1|\[::1\]):[1-9][0-9]{0,4}(\/[^#]*)?$/.exec(redirectUri);
  return withoutPort !== null && client.redirectUris.includes(`http://${withoutPort[1]}${withoutPort[2] ?? ''}`);
}
