import { DecryptCommand, DescribeKeyCommand, DisableKeyCommand, EncryptCommand, KMSClient, ScheduleKeyDeletionCommand } from '@aws-sdk/client-kms';
import type { KeyEncryptionKey } from '../src/crypto/key-encryption-key';
import { awsFailure } from './aws-error';
import { UpstreamFailure } from './upstream-failure';

export interface AwsKmsOptions {
  region: string;
  /** Only for emulators (moto, LocalStack). */
  endpoint?: string;
  timeoutMs: number;
}

/**
 * Tenants' data keys wrapped by AWS KMS keys (`tenants.T.encryption.aws_kms.key_id`), with the broker's
 * AWS identity. The encryption context names the tenant, so KMS itself refuses to unwrap one tenant's
 * key as another's, and CloudTrail shows which tenant each unwrap was for. One client for all tenants;
 * each request is bounded by the SDK's connection and request timeouts, with one retry at most.
 */
export interface AwsKms {
  kek(tenant: string, keyId: string): KeyEncryptionKey;
  close(): void;
}

export function createAwsKms(options: AwsKmsOptions): AwsKms {
  const client = new KMSClient({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    maxAttempts: 2,
    requestHandler: { connectionTimeout: options.timeoutMs, requestTimeout: options.timeoutMs, throwOnRequestTimeout: true },
  });
  const call = async <T>(operation: string, keyId: string, send: () => Promise<T>): Promise<T> => {
    try {
      return await send();
    } catch (err) {
      throw awsFailure(operation, `kms:${keyId}`, err);
    }
  };

  return {
    kek(tenant, keyId) {
      const context = (purpose: string) => ({ bulkhead_tenant: tenant, bulkhead_purpose: purpose });
      return {
        id: `aws_kms:${keyId}`,
        async wrap(dataKey, purpose) {
          const answer = await call('Encrypt', keyId, () => client.send(new EncryptCommand({ KeyId: keyId, Plaintext: dataKey, EncryptionContext: context(purpose) })));
          if (!answer.CiphertextBlob) throw new UpstreamFailure(`aws Encrypt kms:${keyId}: no ciphertext in the answer`);
          return Buffer.from(answer.CiphertextBlob).toString('base64');
        },
        async unwrap(wrapped, purpose) {
          const answer = await call('Decrypt', keyId, () =>
            client.send(new DecryptCommand({ KeyId: keyId, CiphertextBlob: Buffer.from(wrapped, 'base64'), EncryptionContext: context(purpose) })),
          );
          if (!answer.Plaintext) throw new UpstreamFailure(`aws Decrypt kms:${keyId}: no plaintext in the answer`);
          return Buffer.from(answer.Plaintext);
        },
        async destroy() {
          // Disabling takes effect at once; deletion has a waiting period AWS imposes (7 days at least).
          try {
            await call('DisableKey', keyId, () => client.send(new DisableKeyCommand({ KeyId: keyId })));
            await call('ScheduleKeyDeletion', keyId, () => client.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 })));
          } catch (err) {
            // A key already pending deletion refuses both (KMSInvalidStateException): a rerun of a shred or
            // tenant delete that died after scheduling it. Only a key KMS says is pending counts as destroyed.
            if (!(err instanceof UpstreamFailure && err.code === 'KMSInvalidStateException')) throw err;
            const state = await call('DescribeKey', keyId, () => client.send(new DescribeKeyCommand({ KeyId: keyId })));
            if (state.KeyMetadata?.KeyState !== 'PendingDeletion') throw err;
            return `aws kms key ${keyId} is already disabled and pending deletion`;
          }
          return `disabled aws kms key ${keyId} and scheduled its deletion in 7 days`;
        },
      };
    },
    close: () => client.destroy(),
  };
}
