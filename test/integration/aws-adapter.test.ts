import { randomBytes } from 'node:crypto';
import { blackHoleServer } from '../support/black-hole';
import { CreateSecretCommand, PutSecretValueCommand, UpdateSecretVersionStageCommand } from '@aws-sdk/client-secrets-manager';
import { createAwsSource } from '../../adapters/aws';
import { systemClock } from '../../src/clock';
import type { CredentialRequest, CredentialSource } from '../../src/credentials/credential-source';
import { BrokerError } from '../../src/errors';
import type { CredentialSpec } from '../../src/policy/schema';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { observeLatency } from './support/latency';
import { bootstrapMoto, type MotoFixture } from './support/moto-bootstrap';

/**
 * The AWS Secrets Manager adapter against moto: per-tenant STS identities, version stages, JSON fields,
 * rotation seen on the next call, and failures that say nothing of AWS's answer.
 */
const TENANTS = ['acme', 'globex'] as const;

function request(tenant: string, spec: Partial<Extract<CredentialSpec, { source: 'aws' }>>, signal = new AbortController().signal): CredentialRequest {
  return { tenant, name: 'crm', spec: { source: 'aws', version_stage: 'AWSCURRENT', ...spec } as CredentialSpec, session: 's', callId: 'c', signal };
}

async function rejectionOf(promise: Promise<unknown>): Promise<BrokerError> {
  try {
    await promise;
  } catch (err) {
    return err as BrokerError;
  }
  throw new Error('expected the call to be refused');
}

describeWithUpstream(['moto'], 'AWS Secrets Manager adapter against moto', () => {
  const env = upstreamEnv();
  const credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY };
  let moto: MotoFixture;
  let source: CredentialSource;

  beforeAll(async () => {
    moto = await bootstrapMoto({ endpoint: env.AWS_ENDPOINT_URL, tenants: TENANTS });
    source = createAwsSource({ region: env.AWS_REGION, endpoint: env.AWS_ENDPOINT_URL, timeoutMs: 3000, clock: systemClock, credentials });
  });
  afterAll(async () => {
    await source?.close?.();
    moto?.client.destroy();
  });

  test("resolves the tenant's own secret, whole or one JSON field, at AWSCURRENT", async () => {
    const acme = moto.tenants.acme!;
    const whole = await source.resolve(request('acme', { secret_id: acme.secretId }));
    expect(JSON.parse(whole.value)).toEqual(acme.secret);
    const field = await source.resolve(request('acme', { secret_id: acme.secretId, field: 'api_key' }));
    expect(field).toMatchObject({ source: 'aws', value: acme.secret.api_key });
    expect(field.ref).toMatch(new RegExp(`^${acme.secretId}#api_key@AWSCURRENT:[0-9a-f-]+$`));
  });

  test('with role_arn, each tenant reads under its own assumed role (STS session named after the tenant)', async () => {
    for (const tenant of TENANTS) {
      const fixture = moto.tenants[tenant]!;
      const cred = await source.resolve(request(tenant, { secret_id: fixture.secretId, field: 'api_key', role_arn: fixture.roleArn }));
      expect(cred.value).toBe(fixture.secret.api_key);
    }
    // moto records every AssumeRole it answered: one session per tenant, on that tenant's role only.
    const state = (await (await fetch(`${env.AWS_ENDPOINT_URL}/moto-api/data.json`)).json()) as { sts: { AssumedRole: unknown[] } };
    const ours = (state.sts.AssumedRole as Array<{ role_arn: string; session_name: string }>).filter((r) => r.role_arn.includes(`-${moto.runId}-`));
    const pairs = new Set(ours.map((r) => `${r.session_name} -> ${r.role_arn.split('/').pop()}`));
    expect([...pairs].sort()).toEqual([`bulkhead-acme -> bulkhead-${moto.runId}-acme`, `bulkhead-globex -> bulkhead-${moto.runId}-globex`]);
  });

  test('a role_arn that is not an IAM role ARN is refused before any AWS call', async () => {
    const err = await rejectionOf(source.resolve(request('acme', { secret_id: moto.tenants.acme!.secretId, role_arn: 'arn:aws:iam::123:user/x' })));
    expect(err.reason).toBe('upstream_unavailable');
  });

  test('rotation by PutSecretValue is seen on the very next call', async () => {
    const secretId = `tenants/acme/${moto.runId}/rotating-put`;
    await moto.client.send(new CreateSecretCommand({ Name: secretId, SecretString: JSON.stringify({ api_key: 'v1' }) }));
    const first = await source.resolve(request('acme', { secret_id: secretId, field: 'api_key' }));
    expect(first.value).toBe('v1');
    await moto.client.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: JSON.stringify({ api_key: 'v2' }) }));
    const second = await source.resolve(request('acme', { secret_id: secretId, field: 'api_key' }));
    expect(second.value).toBe('v2');
    expect(second.ref).not.toBe(first.ref);
    expect((await source.resolve(request('acme', { secret_id: secretId, field: 'api_key', version_stage: 'AWSPREVIOUS' }))).value).toBe('v1');
  });

  test('rotation by staging (AWSPENDING, then moving AWSCURRENT) is seen on the next call, not before', async () => {
    const secretId = `tenants/acme/${moto.runId}/rotating-stage`;
    const created = await moto.client.send(new CreateSecretCommand({ Name: secretId, SecretString: 'old-value' }));
    const pending = await moto.client.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: 'new-value', VersionStages: ['AWSPENDING'] }));
    expect((await source.resolve(request('acme', { secret_id: secretId }))).value).toBe('old-value');
    expect((await source.resolve(request('acme', { secret_id: secretId, version_stage: 'AWSPENDING' }))).value).toBe('new-value');
    await moto.client.send(new UpdateSecretVersionStageCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT', MoveToVersionId: pending.VersionId, RemoveFromVersionId: created.VersionId }));
    expect((await source.resolve(request('acme', { secret_id: secretId }))).value).toBe('new-value');
  });

  test("a missing secret or field is upstream_unavailable, and AWS's message is not passed on", async () => {
    const missing = await rejectionOf(source.resolve(request('acme', { secret_id: `tenants/acme/${moto.runId}/nope` })));
    expect(missing.reason).toBe('upstream_unavailable');
    expect(missing.message).toBe('credential "crm" is not available from AWS Secrets Manager');
    expect(missing.cause).toMatchObject({ statusCode: expect.any(Number), code: 'ResourceNotFoundException' });
    expect(String((missing.cause as Error).message)).not.toMatch(/can't find/);
    const noField = await rejectionOf(source.resolve(request('acme', { secret_id: moto.tenants.acme!.secretId, field: 'constructor' })));
    expect(noField.reason).toBe('upstream_unavailable');
  });

  describe('an endpoint that is slow or gone', () => {
    const blackHole = blackHoleServer();

    test("an endpoint that never answers gives upstream_unavailable at the SDK's request timeout", async () => {
      const hung = createAwsSource({ region: env.AWS_REGION, endpoint: blackHole.url, timeoutMs: 300, clock: systemClock, credentials });
      const err = await rejectionOf(hung.resolve(request('acme', { secret_id: moto.tenants.acme!.secretId })));
      expect(err.reason).toBe('upstream_unavailable');
      await hung.close?.();
    });

    test("the caller's abort signal ends the request", async () => {
      const hung = createAwsSource({ region: env.AWS_REGION, endpoint: blackHole.url, timeoutMs: 60_000, clock: systemClock, credentials });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const err = await rejectionOf(hung.resolve(request('acme', { secret_id: moto.tenants.acme!.secretId }, controller.signal)));
      expect(err.reason).toBe('upstream_unavailable');
      await hung.close?.();
    });

    test('nothing listening gives upstream_unavailable', async () => {
      const gone = createAwsSource({ region: env.AWS_REGION, endpoint: 'http://127.0.0.1:9', timeoutMs: 1000, clock: systemClock, credentials });
      const err = await rejectionOf(gone.resolve(request('acme', { secret_id: `x-${randomBytes(2).toString('hex')}` })));
      expect(err.reason).toBe('upstream_unavailable');
      await gone.close?.();
    });
  });

  test('observed resolve latency (printed, not asserted)', async () => {
    const acme = moto.tenants.acme!;
    await observeLatency('aws secretsmanager (broker identity)', 30, () => source.resolve(request('acme', { secret_id: acme.secretId, field: 'api_key' })));
    await observeLatency('aws secretsmanager (assumed tenant role, warm STS creds)', 30, () => source.resolve(request('acme', { secret_id: acme.secretId, field: 'api_key', role_arn: acme.roleArn })));
  }, 60_000);
});
