import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import type { Clock } from '../src/clock';
import { withDeadline } from '../src/deadline';
import { awsFailure } from './aws-error';

/**
 * Per-tenant AWS identities: a credential with `role_arn` is read with that role's temporary
 * credentials (STS AssumeRole), so what a tenant can read is bounded by its role's IAM policy, not by
 * the broker's own. The session name carries the tenant, so CloudTrail attributes every read to it.
 *
 * The cache holds STS credentials (an identity), never secret values, keyed by tenant and role, and
 * refreshes them well before they expire; concurrent refreshes share one STS call.
 */
export interface AwsIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export interface AssumedRoles {
  /** A credential provider for the SDK: the tenant's assumed-role credentials, fresh enough to use. */
  provider(tenant: string, roleArn: string): () => Promise<AwsIdentity>;
}

export interface AssumedRolesOptions {
  sts: Pick<STSClient, 'send'>;
  clock: Clock;
  timeoutMs: number;
  /** Requested session length; STS allows 900s up to the role's MaxSessionDuration. */
  sessionSeconds?: number;
}

/** arn:aws:iam::123456789012:role/path/name (also aws-cn, aws-us-gov partitions). */
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
export function isRoleArn(value: string): boolean {
  return ROLE_ARN.test(value);
}

export function createAssumedRoles(options: AssumedRolesOptions): AssumedRoles {
  const sessionSeconds = options.sessionSeconds ?? 900;
  const cache = new Map<string, AwsIdentity & { expiresAt: number }>();
  const inFlight = new Map<string, Promise<AwsIdentity & { expiresAt: number }>>();

  async function assume(tenant: string, roleArn: string) {
    const command = new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: `bulkhead-${tenant}`.slice(0, 64), DurationSeconds: sessionSeconds });
    const answer = await withDeadline(options.timeoutMs, 'sts client timeout', undefined, (abortSignal) => options.sts.send(command, { abortSignal })).catch((err: unknown) => {
      throw awsFailure('sts:AssumeRole', roleArn, err);
    });
    const c = answer.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw awsFailure('sts:AssumeRole', roleArn, new Error('no credentials in the answer'));
    const expiresAt = c.Expiration ? c.Expiration.getTime() : options.clock.now() + sessionSeconds * 1000;
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: new Date(expiresAt), expiresAt };
  }

  return {
    provider(tenant, roleArn) {
      const key = `${tenant}\u0000${roleArn}`;
      return async () => {
        const held = cache.get(key);
        // Refresh with a third of the session (at most 5 minutes, the SDK's own margin) still left, so
        // a call never starts with credentials that expire while it is in flight.
        const margin = Math.min(300_000, (sessionSeconds * 1000) / 3);
        if (held && held.expiresAt - options.clock.now() > margin) return held;
        let pending = inFlight.get(key);
        if (!pending) {
          pending = assume(tenant, roleArn).finally(() => inFlight.delete(key));
          inFlight.set(key, pending);
        }
        const fresh = await pending;
        cache.set(key, fresh);
        return fresh;
      };
    },
  };
}
