import { GetSecretValueCommand, SecretsManagerClient, type SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import type { Clock } from '../src/clock';
import type { CredentialRequest, CredentialSource, ResolvedCredential } from '../src/credentials/credential-source';
import { withDeadline } from '../src/deadline';
import { BrokerError, isBrokerError } from '../src/errors';
import { createAssumedRoles, isRoleArn } from './aws-assumed-roles';
import { awsFailure } from './aws-error';
import { parseJsonObject, selectField } from './secret-field';
import { UpstreamFailure } from './upstream-failure';

/**
 * `source: aws` credentials from AWS Secrets Manager: `secret_id` at `version_stage` (AWSCURRENT by
 * default, always sent explicitly so a stage move is seen on the very next call), optionally one JSON
 * `field` of it. With `role_arn`, the read is made with that role's STS credentials (one identity per
 * tenant and role, see aws-assumed-roles.ts); without it, with the broker's own AWS identity.
 *
 * Every request is bounded twice: the SDK's own connection/request timeouts (the broker's configured
 * `timeout`) and the caller's AbortSignal. Retries are limited to one, so an unreachable endpoint
 * becomes `upstream_unavailable` quickly instead of after the SDK's default backoff. Nothing is cached
 * here; the resolver caches per tenant only for credentials with `cache_ttl`.
 */
export interface AwsSourceOptions {
  region: string;
  /** Only for emulators (moto, LocalStack); real AWS uses the SDK's regional endpoint. */
  endpoint?: string;
  timeoutMs: number;
  clock: Clock;
  /** The broker's base identity. Default: the SDK's provider chain (env, profile, instance/task role). */
  credentials?: SecretsManagerClientConfig['credentials'];
}

export function createAwsSource(options: AwsSourceOptions): CredentialSource {
  const base = {
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: 2,
    // throwOnRequestTimeout: without it, recent SDKs only log a warning when requestTimeout passes.
    requestHandler: { connectionTimeout: options.timeoutMs, requestTimeout: options.timeoutMs, throwOnRequestTimeout: true },
  };
  const brokerClient = new SecretsManagerClient(base);
  const sts = new STSClient(base);
  const roles = createAssumedRoles({ sts, clock: options.clock, timeoutMs: options.timeoutMs });
  // One client per (tenant, role): the SDK binds credentials to a client. Bounded by the policy.
  const tenantClients = new Map<string, SecretsManagerClient>();

  function clientFor(tenant: string, roleArn: string | undefined): SecretsManagerClient {
    if (!roleArn) return brokerClient;
    if (!isRoleArn(roleArn)) throw new UpstreamFailure(`role_arn for tenant ${tenant} is not an IAM role ARN`);
    const key = `${tenant}\u0000${roleArn}`;
    let client = tenantClients.get(key);
    if (!client) {
      client = new SecretsManagerClient({ ...base, credentials: roles.provider(tenant, roleArn) });
      tenantClients.set(key, client);
    }
    return client;
  }

  async function resolve(request: CredentialRequest): Promise<ResolvedCredential> {
    const { spec, signal } = request;
    if (spec.source !== 'aws') throw new UpstreamFailure(`the AWS adapter cannot serve source "${spec.source}"`);
    const stage = spec.version_stage;
    const client = clientFor(request.tenant, spec.role_arn);
    // Our own bound as well as the SDK's: two attempts at most, each within the client timeout.
    const command = new GetSecretValueCommand({ SecretId: spec.secret_id, VersionStage: stage });
    const answer = await withDeadline(options.timeoutMs * 2, 'aws client timeout', signal, (abortSignal) => client.send(command, { abortSignal })).catch((err: unknown) => {
      throw awsFailure('GetSecretValue', `${spec.secret_id}@${stage}`, err);
    });
    let document: unknown;
    if (typeof answer.SecretString === 'string') document = spec.field === undefined ? answer.SecretString : parseJsonObject(answer.SecretString);
    else if (answer.SecretBinary && spec.field === undefined) document = Buffer.from(answer.SecretBinary).toString('base64');
    const value = selectField(document, spec.field);
    if (value === undefined) throw new UpstreamFailure(`aws GetSecretValue ${spec.secret_id}@${stage}: ${spec.field ? `no JSON field "${spec.field}"` : 'no value'}`);
    const version = answer.VersionId ? `:${answer.VersionId}` : '';
    return { source: 'aws', ref: `${spec.secret_id}${spec.field ? `#${spec.field}` : ''}@${stage}${version}`, value };
  }

  return {
    sources: ['aws'],

    async resolve(request) {
      try {
        return await resolve(request);
      } catch (err) {
        if (isBrokerError(err)) throw err;
        throw new BrokerError('upstream_unavailable', `credential "${request.name}" is not available from AWS Secrets Manager`, {
          cause: err instanceof UpstreamFailure ? err : awsFailure('request', request.name, err),
        });
      }
    },

    // Probing Secrets Manager would cost an API call per probe and needs a secret to read; the first
    // real call reports an outage as upstream_unavailable instead.
    async ready() {
      return true;
    },

    async close() {
      brokerClient.destroy();
      sts.destroy();
      for (const client of tenantClients.values()) client.destroy();
    },
  };
}
