import type { CredentialRequest, CredentialSource, ResolvedCredential } from '../src/credentials/credential-source';
import { BrokerError } from '../src/errors';
import type { LocalSecretStore } from './local-store';

export { createLocalSecretStore, type LocalSecretStore, type LocalSecretStoreOptions } from './local-store';

/**
 * `source: local` credentials, from the embedded store. The tenant that picks the data key and the file
 * is `request.tenant` (from the verified token) and nothing else: the spec only names the secret, so no
 * policy or argument can point a call at another tenant's store.
 */
export function createLocalSource(store: Pick<LocalSecretStore, 'get'>): CredentialSource {
  return {
    sources: ['local'],
    // Its own disk and memory: no peer to wait for, so no deadline machinery per call.
    cannotHang: true,

    async resolve(request: CredentialRequest): Promise<ResolvedCredential> {
      // One public answer for "no such secret", "shredded", "tampered" and "wrong source": none of them
      // should tell a caller more than that this credential cannot be had right now.
      const unavailable = (cause?: unknown) =>
        new BrokerError('upstream_unavailable', `credential "${request.name}" is not available`, cause === undefined ? {} : { cause });
      const { spec, tenant } = request;
      if (spec.source !== 'local') throw unavailable(new Error(`local source cannot serve source "${spec.source}"`));
      if (request.signal.aborted) throw unavailable(request.signal.reason);
      let value: string | undefined;
      try {
        value = await store.get(tenant, spec.name);
      } catch (err) {
        throw unavailable(err);
      }
      if (value === undefined) throw unavailable();
      if (request.signal.aborted) throw unavailable(request.signal.reason);
      return { source: 'local', ref: `local:${tenant}/${spec.name}`, value };
    },

    async ready() {
      return true;
    },
  };
}
