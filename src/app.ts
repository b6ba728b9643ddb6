import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import type { Logger } from 'pino';
import { createAuthorizer, type Authorizer } from './authorize/authorizer';
import { createCompletion } from './authorize/completion';
import { systemClock, type Clock } from './clock';
import type { CredentialSource } from './credentials/credential-source';
import { createCredentialResolver, type CredentialResolver } from './credentials/credential-resolver';
import { loadOrCreateMasterKey } from './crypto/master-key';
import { createHttpApp } from './http/app';
import { digestsOf } from './http/authenticate';
import { createLogger } from './observability/logger';
import { createMetrics, type BrokerMetrics } from './observability/metrics';
import { createKillSwitch } from './operator/kill-switch';
import type { Policy } from './policy/schema';
import type { BrokerState } from './state/broker-state';
import { createBrokerState } from './compose/broker-state';
import { createCredentialSources } from './compose/credential-sources';
import { createKeyRing, type KeyRing } from './tokens/key-ring';
import { createTokenIssuer } from './tokens/issuer';
import { createTokenService, type TokenService } from './tokens/token-service';
import { createTokenVerifier } from './tokens/verifier';
import { createBrokerTls, type BrokerTls } from '../rotation/broker-tls';
import { createKeyRotation, type KeyRotation } from '../rotation/key-rotation';
import { createSoleLeaderLock, type LeaderLock } from '../rotation/leader-lock';
import { bindRotationMetrics } from '../rotation/rotation-metrics';

export interface BrokerOptions {
  policy: Policy;
  dataDir: string;
  clock?: Clock;
  logger?: Logger;
  /** Replaces the credential sources built from policy (tests use this to add a failing source). */
  sources?: CredentialSource[];
  /** Replaces the state built from policy (embedded or shared). */
  state?: BrokerState;
  env?: NodeJS.ProcessEnv;
  /** Who may rotate signing keys when replicas share state (default: this process alone). */
  leaderLock?: LeaderLock;
  /** How long a credential source may take before the call fails closed (default 5 s; tests shorten it). */
  upstreamTimeoutMs?: number;
}

export interface Broker {
  app: Express;
  policy: Policy;
  state: BrokerState;
  keyRing: KeyRing;
  /** Signing-key timer, and HTTPS/mTLS (null when broker.tls.mode is off). */
  rotation: { keys: KeyRotation; tls: BrokerTls | null };
  tokens: TokenService;
  authorizer: Authorizer;
  credentials: CredentialResolver;
  metrics: BrokerMetrics;
  logger: Logger;
  listen(port?: number, host?: string): Promise<{ server: Server; url: string }>;
  close(): Promise<void>;
}

/** The composition root: every dependency is built and wired here, once. */
export async function createBroker(options: BrokerOptions): Promise<Broker> {
  const { policy, dataDir } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger();
  const metrics = createMetrics();
  const masterKey = await loadOrCreateMasterKey(dataDir, options.env);
  const state = options.state ?? (await createBrokerState({ policy, dataDir, masterKey, clock, logger }));

  const keyRing = createKeyRing({ store: state.keys, clock, maxTokenTtlMs: policy.broker.max_token_ttl, clockSkewMs: policy.broker.clock_skew });
  await keyRing.init();
  // Scaled out, a rotation on another replica is announced: follow it now, not at the next timer tick.
  state.onKeysChanged?.(() => void keyRing.reload().catch((err) => logger.warn({ err }, 'signing key ring reload failed; following on the rotation timer')));
  const keyRotation = createKeyRotation({ keyRing, lock: options.leaderLock ?? state.leaderLock ?? createSoleLeaderLock(), clock, periodMs: policy.broker.rotation.signing_key, logger });
  const tls = await createBrokerTls({ policy, dataDir, masterKey, clock, logger, env: options.env });
  const issuer = createTokenIssuer({ keyRing, clock, issuer: policy.broker.issuer });
  const verifier = createTokenVerifier({ keyRing, clock, issuer: policy.broker.issuer, clockSkewMs: policy.broker.clock_skew });
  const tokens = createTokenService({ policy, issuer, verifier, revocations: state.revocations, clock });

  const sources = options.sources ?? (await createCredentialSources({ policy, dataDir, masterKey, logger, clock }));
  const credentials = createCredentialResolver({
    sources,
    clock,
    // The outer bound sits just above the slowest configured upstream's own timeout, so an adapter's
    // timeout is never cut short by this one.
    timeoutMs: options.upstreamTimeoutMs ?? Math.max(policy.broker.upstreams.vault?.timeout ?? 0, policy.broker.upstreams.aws?.timeout ?? 0, 4000) + 1000,
    onUpstreamError: (source, err) => {
      metrics.upstreamErrors.inc({ source });
      logger.warn({ source, err }, 'upstream credential source failed');
    },
  });

  const currentPolicy = () => policy;
  const audit = {
    append: (tenant: string, event: Parameters<BrokerState['audit']['append']>[1]) =>
      state.audit.append(tenant, event).catch((err) => {
        metrics.auditFailures.inc();
        throw err;
      }),
  };
  const authorizer = createAuthorizer({
    policy: currentPolicy,
    verifier,
    revocations: state.revocations,
    quotas: state.quotas,
    sessions: state.sessions,
    approvals: state.approvals,
    credentials,
    audit,
    clock,
    onDecision: (decision, reason) => metrics.decisions.inc({ decision, reason }),
  });
  const complete = createCompletion({ sessions: state.sessions, quotas: state.quotas, credentials, audit });
  const killSwitch = createKillSwitch({ policy: currentPolicy, revocations: state.revocations, sessions: state.sessions, quotas: state.quotas, credentials, audit, clock });

  const app = createHttpApp({
    logger,
    bodyLimit: policy.broker.body_limit,
    servers: { digests: () => digestsOf(policy.servers, (s) => s.key_sha256), fromCertificate: tls?.fromCertificate },
    operators: { digests: () => digestsOf(policy.operators, (o) => o.token_sha256), fromCertificate: tls?.fromCertificate },
    token: { tokens, jwks: () => keyRing.jwks(), issuer: policy.broker.issuer, metrics },
    server: { policy: currentPolicy, authorizer, complete, metrics },
    operator: {
      policy: currentPolicy,
      killSwitch,
      revocations: state.revocations,
      sessions: state.sessions,
      quotas: state.quotas,
      approvals: state.approvals,
      audit: { read: (t, o) => state.audit.read(t, o), verify: (t) => state.audit.verify(t), append: audit.append },
      rotateKeys: () => keyRotation.rotateNow(),
      metrics,
      clock,
    },
    health: {
      registry: metrics.registry,
      readiness: async () => ({ ...(await state.ready()), ...(await credentials.ready()) }),
    },
  });

  // Rotation starts before serving: an overdue key ring (the broker was down) steps once here.
  await keyRotation.start();
  await tls?.start();
  bindRotationMetrics(metrics, { clock, keys: () => keyRing.status(), nextKeyRotationAt: () => keyRotation.nextRotationAt(), serverCertificate: () => tls?.serverCertificate.status(), caIssuedAt: () => tls?.caIssuedAt() });

  const servers: Server[] = [];
  return {
    app,
    policy,
    state,
    keyRing,
    rotation: { keys: keyRotation, tls },
    tokens,
    authorizer,
    credentials,
    metrics,
    logger,
    async listen(port = 0, host = '127.0.0.1') {
      // With TLS on: client certificates are requested but optional (bearer-key clients still connect).
      const server: Server = tls ? tls.attach(createHttpsServer(tls.serverOptions(), app)) : createServer(app);
      server.keepAliveTimeout = 65_000;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      servers.push(server);
      const address = server.address() as AddressInfo;
      return { server, url: `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${address.port}` };
    },
    async close() {
      await keyRotation.stop();
      await tls?.stop();
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      await credentials.close();
      await state.close();
    },
  };
}
