import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createAwsSource } from '../../adapters/aws';
import type { UpstreamFailure } from '../../adapters/upstream-failure';
import { createVaultSource } from '../../adapters/vault';
import { systemClock } from '../../src/clock';
import { createCredentialResolver } from '../../src/credentials/credential-resolver';
import type { CredentialRequest, CredentialSource } from '../../src/credentials/credential-source';
import { deadlineBound, startDeadline } from '../../src/deadline';
import type { BrokerError } from '../../src/errors';
import type { CredentialSpec } from '../../src/policy/schema';
import { blackHoleServer } from '../support/black-hole';

/**
 * An adapter's own client timeout must hold even when the garbage collector runs while the upstream
 * hangs. `AbortSignal.timeout()` is held weakly by Node: on Node 20 `AbortSignal.any([outer,
 * AbortSignal.timeout(t)])` loses its timeout after a collection, and the call then waits for the outer
 * budget. Every bound now comes from src/deadline.ts (a strongly held timer); these tests force
 * collections during a hung request and check *which* bound ended it: the adapter's, while the outer
 * one (a hundred times longer) is still pending.
 */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

jest.setTimeout(120_000);

const ADAPTER_TIMEOUT_MS = 300;
// Far above the adapter's: on a loaded machine the adapter's bound still fires long before it.
const OUTER_BUDGET_MS = 30_000;

/** Collects garbage (with some garbage to collect) every few milliseconds until stopped. */
function collectContinuously(): () => void {
  const timer = setInterval(() => {
    let junk: unknown[] = [];
    for (let i = 0; i < 10_000; i++) junk.push({ i });
    junk = [];
    gc();
  }, 10);
  return () => clearInterval(timer);
}

/** Runs `call` under an outer deadline while collecting garbage; returns the error and whether the outer bound had fired. */
async function failureUnderGc(call: (signal: AbortSignal) => Promise<unknown>): Promise<{ err: BrokerError; outerFired: boolean }> {
  const outer = startDeadline(OUTER_BUDGET_MS, 'test outer budget');
  const stop = collectContinuously();
  try {
    await call(outer.signal);
  } catch (err) {
    return { err: err as BrokerError, outerFired: outer.signal.aborted };
  } finally {
    stop();
    outer.cancel();
  }
  throw new Error('expected the call to a hung upstream to fail');
}

function request(spec: CredentialSpec, signal: AbortSignal): CredentialRequest {
  return { tenant: 'acme', name: 'crm', spec, session: 'sess-gc', callId: 'call-gc', signal };
}

describe('upstream timeouts survive garbage collection while the upstream hangs', () => {
  const blackHole = blackHoleServer();
  let dir: string;
  let tokenFile: string;
  const sources: CredentialSource[] = [];
  const vaultSource = () => {
    const source = createVaultSource({ address: blackHole.url, timeoutMs: ADAPTER_TIMEOUT_MS, tenants: {}, shared: { tokenFile }, clock: systemClock });
    sources.push(source);
    return source;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-gc-'));
    tokenFile = join(dir, 'vault-token');
    await writeFile(tokenFile, 'hvs.not-a-real-token\n', { mode: 0o600 });
  });
  afterAll(async () => {
    for (const source of sources) await source.close?.();
    await rm(dir, { recursive: true, force: true });
  });

  test("Vault: the adapter's client timeout ends the hung read, not the caller's budget", async () => {
    const source = vaultSource();
    const { err, outerFired } = await failureUnderGc((signal) => source.resolve(request({ source: 'vault', path: 'secret/data/tenants/acme/crm' } as CredentialSpec, signal)));
    expect(err.reason).toBe('upstream_unavailable');
    expect((err.cause as UpstreamFailure).bound).toBe('vault client timeout');
    expect(outerFired).toBe(false);
  });

  test("AWS: the adapter's own bound (SDK request timeout inside the adapter deadline) ends the hung read", async () => {
    const source = createAwsSource({ region: 'us-east-1', endpoint: blackHole.url, timeoutMs: ADAPTER_TIMEOUT_MS, clock: systemClock, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    sources.push(source);
    const { err, outerFired } = await failureUnderGc((signal) => source.resolve(request({ source: 'aws', secret_id: 'tenants/acme/crm', version_stage: 'AWSCURRENT' } as CredentialSpec, signal)));
    expect(err.reason).toBe('upstream_unavailable');
    const cause = err.cause as UpstreamFailure;
    expect(cause.code).toBe('TimeoutError');
    // Either the SDK's per-attempt timeout or the adapter's deadline, never the caller's.
    expect([undefined, 'aws client timeout']).toContain(cause.bound);
    expect(outerFired).toBe(false);
  });

  test("through the resolver: the deny comes from the adapter's timeout, inside the broker's per-call budget", async () => {
    const failures: unknown[] = [];
    const resolver = createCredentialResolver({ sources: [vaultSource()], clock: systemClock, timeoutMs: OUTER_BUDGET_MS, onUpstreamError: (_source, err) => failures.push(err) });
    const stop = collectContinuously();
    try {
      const err = (await resolver.resolve({ tenant: 'acme', name: 'crm', spec: { source: 'vault', path: 'secret/data/tenants/acme/crm' } as CredentialSpec, session: 's', callId: 'c' }).catch((e: unknown) => e)) as BrokerError;
      expect(err.reason).toBe('upstream_unavailable');
      expect(failures.map((f) => ((f as BrokerError).cause as UpstreamFailure).bound)).toEqual(['vault client timeout']);
      expect(deadlineBound(err)).not.toBe('upstream budget');
    } finally {
      stop();
    }
  });
});
