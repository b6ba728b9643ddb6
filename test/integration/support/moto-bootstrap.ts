import { randomBytes } from 'node:crypto';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/**
 * Sets up moto (AWS Secrets Manager + IAM + STS) per tenant, as docs/upstreams.md describes for AWS:
 * a secret `tenants/<t>/<run>/crm` (JSON), and an IAM role `bulkhead-<run>-<t>` whose inline policy
 * allows reading only `tenants/<t>/*`, for the broker to assume through STS.
 *
 * The project ships no IAM SDK client, so the two IAM calls use IAM's query API directly. moto does
 * not verify signatures (it only reads the service and region from the Authorization header); this
 * helper is for the emulator only.
 */
export interface MotoTenantFixture {
  tenant: string;
  secretId: string;
  secret: { api_key: string; password: string };
  roleArn: string;
}

export interface MotoFixture {
  endpoint: string;
  runId: string;
  tenants: Record<string, MotoTenantFixture>;
  client: SecretsManagerClient;
}

export const MOTO_ACCOUNT = '123456789012';

export function motoClient(endpoint: string, region = 'us-east-1'): SecretsManagerClient {
  return new SecretsManagerClient({ region, endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: 1 });
}

async function iam(endpoint: string, params: Record<string, string>): Promise<string> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00',
    },
    body: new URLSearchParams({ Version: '2010-05-08', ...params }).toString(),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (response.status >= 300 && !text.includes('EntityAlreadyExists')) throw new Error(`moto IAM ${params.Action}: HTTP ${response.status}`);
  return text;
}

export async function bootstrapMoto(options: {
  endpoint: string;
  tenants: readonly string[];
  runId?: string;
  secrets?: Record<string, MotoTenantFixture['secret']>;
}): Promise<MotoFixture> {
  const runId = options.runId ?? randomBytes(4).toString('hex');
  const client = motoClient(options.endpoint);
  const tenants: Record<string, MotoTenantFixture> = {};
  for (const tenant of options.tenants) {
    const secret = options.secrets?.[tenant] ?? { api_key: `${tenant}-aws-key-${randomBytes(12).toString('hex')}`, password: `${tenant}-aws-pw-${randomBytes(12).toString('hex')}` };
    const secretId = `tenants/${tenant}/${runId}/crm`;
    await client.send(new CreateSecretCommand({ Name: secretId, SecretString: JSON.stringify(secret) })).catch((err: Error) => {
      if (err.name !== 'ResourceExistsException') throw err;
    });
    const roleName = `bulkhead-${runId}-${tenant}`;
    await iam(options.endpoint, {
      Action: 'CreateRole',
      RoleName: roleName,
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${MOTO_ACCOUNT}:root` }, Action: 'sts:AssumeRole' }] }),
    });
    await iam(options.endpoint, {
      Action: 'PutRolePolicy',
      RoleName: roleName,
      PolicyName: 'read-own-tenant-secrets',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: `arn:aws:secretsmanager:*:${MOTO_ACCOUNT}:secret:tenants/${tenant}/*` }],
      }),
    });
    tenants[tenant] = { tenant, secretId, secret, roleArn: `arn:aws:iam::${MOTO_ACCOUNT}:role/${roleName}` };
  }
  return { endpoint: options.endpoint, runId, tenants, client };
}
