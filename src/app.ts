import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { AuditEvent, AuditRecord } from './audit/audit-log';
import { createAuditEvidence, type AuditEvidence } from './audit/audit-evidence';
import { createAuditKeys, type AuditKeys } from './audit/audit-keys';
import { checkpointProblem, type Checkpoint } from './audit/checkpoint';
import { createCheckpointer, type Checkpointer } from './audit/checkpointer';
import { exportTenantBundle } from './audit/export';
import { createArgumentMacs, type ArgumentMacs } from './argument-keys/argument-macs';
import { createAuthorizer, type Authorizer } from './authorize/authorizer';
import { createCompletion } from './authorize/completion';
import { createInFlightCalls } from './authorize/in-flight-calls';
import { createDenyBudget } from './audit/deny-budget';
import { createSpending } from './authorize/spend';
import { systemClock, type Clock } from './clock';
import type { CredentialSource } from './credentials/credential-source';
import { createCredentialResolver, type CredentialResolver } from './credentials/credential-resolver';
import { masterKeyKek } from './crypto/key-encryption-key';
import { loadOrCreateMasterKey } from './crypto/master-key';
import { BrokerError } from './errors';
import { createHttpApp, type HttpApp } from './http/app';
import { listenOnSocket } from './net/unix-listener';
import { digestsOf } from './http/authenticate';
import { createLogger } from './observability/logger';
import { createMetrics, type BrokerMetrics } from './observability/metrics';
import { currentRequestId } from './observability/request-context';
import { createKillSwitch } from './operator/kill-switch';
import { createQuarantineReview } from './operator/quarantine-review';
import { createRestore } from './operator/restore';
import { createLivePolicy, type LivePolicy, type ReloadResult } from './policy/live-policy';
import { PolicyError } from './policy/load';
import { DEFAULT_AUDITED_DENIES_PER_MINUTE, type Policy } from './policy/schema';
import type { BrokerState } from './state/broker-state';
import { createBrokerState } from './compose/broker-state';
import { createApprovalView } from './approvals/approval-view';
import { createArgumentSeal } from './approvals/sealed-arguments';
import { createCredentialSources } from './compose/credential-sources';
import { createTenantSecretStore, type TenantSecrets } from './compose/secret-store';
import { shredTenantKeys } from './compose/tenant-shred';
import { createRemoteIdpKeys } from './tokens/idp-keys';
import { createKeyRing, type KeyRing } from './tokens/key-ring';
import { signingKeyReadiness } from './tokens/signing-key-readiness';
import { describeError } from './observability/readiness';
import { readingAfterAppends } from './audit/read-after-append';
import { releaseUnusedHeap } from './runtime/release-heap';
import { registeringSessions } from './sessions/session-registering-issuer';
import { createCallContextSigner } from './tokens/call-context';
import { createTokenIssuer } from './tokens/issuer';
import { createAuthorizationFlow } from './oauth/authorization-flow';
import { clientMetadataSettings, createClientMetadataResolver } from './oauth/client-metadata-document';
import { createClientRegistry } from './oauth/clients';
import { createIdpLogin } from './oauth/idp-login';
import { createTokenIntrospection } from './tokens/token-introspection';
import { createTokenService, type TokenService } from './tokens/token-service';
import { createTokenVerifier } from './tokens/verifier';
import { SECURITY_STREAM } from './audit/security-stream';
import { createTokenDenies, recordingRefusals } from './audit/token-denies';
import { createBrokerTls, type BrokerTls } from '../rotation/broker-tls';
import { createKeyRotation, type KeyRotation } from '../rotation/key-rotation';
import { createSoleLeaderLock, type LeaderLock } from '../rotation/leader-lock';
import { bindRotationMetrics } from '../rotation/rotation-metrics';

export interface BrokerOptions {
  policy: Policy;
  /**
   * Reads the policy again for a reload (SIGHUP, POST /v1/policy/reload): `serve --config FILE` reads
   * FILE. Without it (the demo policy, most tests) a reload is refused.
   */
  loadPolicy?: () => Policy | Promise<Policy>;
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
  /** The audited-deny budget's window (default one minute; tests shorten it to see a summary written). */
  denyWindowMs?: number;
  /**
   * Give the heap a policy load left unused back to the system after the start and after each applied
   * reload (runtime/release-heap.ts): `serve` sets it; off for embedders and tests, which own their heap.
   */
  releaseHeap?: boolean;
}

export interface Broker {
  /** The request listener of the broker's HTTP surface (http/app.ts). */
  app: HttpApp;
  /** The policy now serving (a reload replaces it). */
  readonly policy: Policy;
  livePolicy: LivePolicy;
  /**
   * Reloads the policy from where it came from, announces it to the other replicas, and records the
   * change in every affected tenant's audit stream. Throws PolicyError (the old policy keeps serving).
   */
  reloadPolicy(operator?: string): Promise<ReloadResult>;
  state: BrokerState;
  /** The audit as the broker writes it (policy version, request id, checkpoints) and its evidence. */
  audit: { append(tenant: string, event: AuditEvent): Promise<AuditRecord>; keys: AuditKeys; evidence: AuditEvidence; checkpointer: Checkpointer };
  keyRing: KeyRing;
  /** Signing-key timer, and HTTPS/mTLS (null when broker.tls.mode is off). */
  rotation: { keys: KeyRotation; tls: BrokerTls | null };
  tokens: TokenService;
  authorizer: Authorizer;
  /** Each tenant's keyed MAC of call arguments (what the audit and approvals carry). */
  argumentMacs: ArgumentMacs;
  credentials: CredentialResolver;
  metrics: BrokerMetrics;
  logger: Logger;
  listen(port?: number, host?: string): Promise<{ server: Server; url: string }>;
  /**
   * Also serves the API on a unix socket (plain HTTP; mode 0600 unless `mode` says otherwise). Every
   * route is there and authenticates as over TCP. The socket file is removed at close.
   */
  listenSocket(path: string, mode?: number): Promise<{ server: Server; url: string }>;
  close(): Promise<void>;
}

/** The composition root: every dependency is built and wired here, once. */
export async function createBroker(options: BrokerOptions): Promise<Broker> {
  // The settings under `broker` never change without a restart (a reload that changes them is refused),
  // so this first policy is read for them; everything per tenant reads the live one.
  const { policy, dataDir } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger();
  const metrics = createMetrics();
  const masterKey = await loadOrCreateMasterKey(dataDir, options.env);
  const stored = options.state ?? (await createBrokerState({ policy, dataDir, masterKey, clock, logger }));
  const state = { ...stored, audit: readingAfterAppends(stored.audit) };

  const keyRing = createKeyRing({ store: state.keys, clock, maxTokenTtlMs: policy.broker.max_token_ttl, clockSkewMs: policy.broker.clock_skew });
  await keyRing.init();
  // Scaled out, a rotation on another replica is announced: follow it now, not at the next timer tick.
  state.onKeysChanged?.(() => void keyRing.reload().catch((err) => logger.warn({ err }, 'signing key ring reload failed; following on the rotation timer')));
  const keyRotation = createKeyRotation({ keyRing, lock: options.leaderLock ?? state.leaderLock ?? createSoleLeaderLock(), clock, periodMs: policy.broker.rotation.signing_key, logger });
  let live: LivePolicy | undefined;
  const currentPolicy = () => live?.current() ?? policy;
  const tls = await createBrokerTls({ policy, currentPolicy, dataDir, masterKey, clock, logger, env: options.env });
  const issuer = registeringSessions(createTokenIssuer({ keyRing, clock, issuer: policy.broker.issuer }), state.sessions);
  // The broker's own tokens: its replicas' clocks agree, so the leeway is small (tenant IdPs get clock_skew).
  const tokenVerifier = createTokenVerifier({ keyRing, clock, issuer: policy.broker.issuer, clockSkewMs: policy.broker.token_clock_skew });
  const idpJwks = createRemoteIdpKeys({
    clock,
    onFailure: (tenant, err) => logger.warn({ tenant, failure: (err as { failure?: string }).failure ?? 'unknown', err: { message: (err as Error)?.message } }, 'tenant IdP JWKS fetch failed; that tenant\'s exchanges back off'),
  });
  // One set of tenant IdP keys for token exchange and browser logins alike (one fetch state per tenant).
  const idpLimits = { timeoutMs: policy.broker.upstreams.idp.timeout, maxBytes: policy.broker.upstreams.idp.body_limit };
  const authorizationFlow = createAuthorizationFlow({
    policy: currentPolicy,
    clients: createClientRegistry({ policy: currentPolicy, metadata: createClientMetadataResolver({ settings: () => clientMetadataSettings(policy), clock }) }),
    idp: createIdpLogin({ clock, keysFor: (tenant, idp) => idpJwks(tenant, idp, idpLimits), limits: idpLimits, clockSkewMs: policy.broker.clock_skew }),
    store: state.oneTime,
    clock,
    issuer: policy.broker.issuer,
  });

  const built = options.sources ? null : await createCredentialSources({ policy, dataDir, masterKey, logger, clock });
  const sources = options.sources ?? built!.sources;
  // Tenant export and delete read and shred the same store the local source serves from (with sources
  // replaced, a store of its own on the same data dir, master key as every root).
  const standalone = built ? null : createTenantSecretStore({ policy: currentPolicy, dataDir, masterKey });
  const tenantSecrets: TenantSecrets = built?.secrets ?? standalone!;
  // Injected sources (tests) come without a tenant key provider: tenants are sealed under the master key then.
  const keks = tenantSecrets.keks;
  const argumentMacs = createArgumentMacs({ storage: state.argumentKeys, keks, master: masterKeyKek(masterKey), now: () => clock.now(), cacheMs: policy.broker.data_key_cache });
  const argumentSeal = createArgumentSeal(keks, argumentMacs);
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

  live = createLivePolicy({
    initial: policy,
    load: options.loadPolicy ?? (() => Promise.reject(new PolicyError('policy not reloaded: this broker was started without a policy file (serve --config FILE)'))),
    // A new tenant's Vault identity exists before its first call can need it.
    prepare: (next) => credentials.reconfigure(next),
  });
  const livePolicy = live;
  metrics.policyVersion.set({ version: livePolicy.version() }, 1);
  const auditKeys = createAuditKeys({ store: state.auditKeys, clock });
  await auditKeys.init();
  const auditKeyRotation = createKeyRotation({ keyRing: auditKeys.ring, lock: state.auditKeyLock ?? createSoleLeaderLock(), clock, periodMs: policy.broker.rotation.audit_key, logger });
  const checkpointRule = { every: policy.broker.audit.checkpoint_every, intervalMs: policy.broker.audit.checkpoint_interval };
  const checkpointer = createCheckpointer({
    store: state.checkpoints,
    signer: () => auditKeys.signer(),
    clock,
    rule: checkpointRule,
    onError: (err) => logger.warn({ err }, 'audit checkpoint failed; retried at the next one'),
  });
  const evidence = createAuditEvidence({ log: state.audit, checkpoints: state.checkpoints, keys: () => auditKeys.published(), rule: checkpointRule, clock });
  const audit = {
    // A record names the policy it was decided under (the authorizer sets the version its call read) and
    // the HTTP request that caused it; once durable, it counts towards the next signed checkpoint.
    append: (tenant: string, event: AuditEvent) =>
      state.audit.append(tenant, { policy_version: livePolicy.version(), request_id: currentRequestId(), ...event }).then(
        (record) => {
          checkpointer.observe(record);
          return record;
        },
        (err) => {
          metrics.auditFailures.inc();
          throw err;
        },
      ),
  };
  // Kills (revokes, quarantines) reach the calls this replica is deciding; scaled out, other replicas'
  // kills arrive through the revocation feed and are acknowledged only once settled here.
  const inFlight = createInFlightCalls();
  state.onKill?.((key) => inFlight.kill(key));
  const kills = {
    async kill(key: string) {
      await inFlight.kill(key);
      await state.announceKill?.(key);
    },
  };
  const denies = createDenyBudget({
    audit,
    perWindow: (stream) => (stream === SECURITY_STREAM ? currentPolicy().broker.audit.security_denies_per_minute : (currentPolicy().tenants[stream]?.quotas.audited_denies_per_minute ?? DEFAULT_AUDITED_DENIES_PER_MINUTE)),
    windowMs: options.denyWindowMs,
    logger,
  });
  // Every consumer gets the verifier that records its refusals: the one choke point for token-level denies.
  const tokenDenies = createTokenDenies({ policy: currentPolicy, denies });
  const verifier = recordingRefusals(tokenVerifier, tokenDenies);
  const tokens = createTokenService({ policy: currentPolicy, issuer, verifier, revocations: state.revocations, clock, idpJwks, codes: state.oneTime, refusals: tokenDenies });
  const spending = createSpending({ budgets: state.budgets, quotas: state.quotas, now: () => clock.now() });
  const authorizer = createAuthorizer({
    policy: currentPolicy,
    verifier,
    tokenDenies,
    revocations: state.revocations,
    quotas: state.quotas,
    sessions: state.sessions,
    approvals: state.approvals,
    argumentSeal,
    argumentMacs,
    credentials,
    audit,
    denies,
    spending,
    clock,
    inFlight,
    onDecision: (decision, reason) => {
      metrics.decisions.inc({ decision, reason });
      if (reason === 'budget_exceeded') metrics.budgetDenials.inc();
    },
    onKilledInFlight: (leasesRevoked) => {
      metrics.killedInFlight.inc();
      metrics.killedInFlightLeasesRevoked.inc(leasesRevoked);
    },
    onOutcomeUnrecorded: (tenant, callId, err) =>
      logger.error({ tenant, call_id: callId, problem: describeError(err) }, 'the allow record after an intent could not be written; the durable intent stands for the released credential'),
  });
  const complete = createCompletion({ sessions: state.sessions, quotas: state.quotas, credentials, audit, kills, clock, spending });
  const exportBundle = (tenant: string, range: { from?: number; to?: number }) =>
    exportTenantBundle({ tenant, ...range, known: true, issuer: policy.broker.issuer, now: clock.now(), log: state.audit, checkpoints: state.checkpoints, evidence, keys: auditKeys.published(), signer: auditKeys.signer() });
  const killSwitch = createKillSwitch({ policy: currentPolicy, revocations: state.revocations, sessions: state.sessions, quotas: state.quotas, credentials, audit, inFlight, clock });
  const restore = createRestore({ policy: currentPolicy, revocations: state.revocations, sessions: state.sessions, audit, clock });
  const quarantines = createQuarantineReview({ sessions: state.sessions, audit });

  const showApproval = createApprovalView({ approvals: state.approvals, seal: argumentSeal });
  const app = createHttpApp({
    logger,
    onUnauthenticated: (reason, detail, attempt, token) => tokenDenies.withoutTenant(reason, detail, attempt, token),
    bodyLimit: policy.broker.body_limit,
    servers: { digests: digestsOf(() => currentPolicy().servers, (s) => s.key_sha256), fromCertificate: tls?.fromCertificate },
    operators: { digests: digestsOf(() => currentPolicy().operators, (o) => o.token_sha256), fromCertificate: tls?.fromCertificate },
    token: { tokens, introspection: createTokenIntrospection({ policy: currentPolicy, verifier, revocations: state.revocations, revoke: (input) => killSwitch.revoke(input), refusals: tokenDenies }), jwks: () => keyRing.jwks(), issuer: policy.broker.issuer, clientMetadataDocuments: policy.broker.authorization.client_metadata.enabled, metrics },
    authorization: { flow: authorizationFlow },
    server: { policy: currentPolicy, authorizer, complete, metrics, refusals: tokenDenies, callContext: createCallContextSigner({ keyRing, clock, issuer: policy.broker.issuer }) },
    operator: {
      policy: currentPolicy,
      killSwitch,
      restore,
      quarantines,
      revocations: state.revocations,
      sessions: state.sessions,
      quotas: state.quotas,
      budgets: state.budgets,
      approvals: state.approvals,
      showApproval,
      audit: { append: audit.append, locked: () => state.audit.locked?.() ?? new Map() },
      rotateKeys: () => keyRotation.rotateNow(),
      reloadPolicy: (operator) => reloadPolicy(operator),
      metrics,
      clock,
    },
    audit: {
      policy: currentPolicy,
      log: state.audit,
      evidence,
      checkpointer,
      checkpoints: state.checkpoints,
      append: audit.append,
      keys: () => auditKeys.published(),
      exportBundle,
      seal: async (tenant, operator, reason) => {
        if (!state.audit.seal) throw new BrokerError('conflict', 'this audit log never refuses a stream (scaled out, each record builds on the committed head): there is nothing to seal');
        const keys = auditKeys.published();
        const signed = (await state.checkpoints.list(tenant)).filter((c) => checkpointProblem(c, tenant, keys) === null) as Checkpoint[];
        const record = await state.audit.seal(tenant, { operator, reason, signer: auditKeys.signer(), signedThrough: Math.max(0, ...signed.map((c) => c.seq)), requestId: currentRequestId() });
        // The seal starts the new segment: sign it at once, so what follows is pinned to it.
        checkpointer.observe(record);
        await checkpointer.sealNow(tenant);
        return record;
      },
    },
    tenants: {
      policy: currentPolicy,
      export: {
        sessions: state.sessions,
        revocations: state.revocations,
        approvals: state.approvals,
        showApproval,
        quotas: state.quotas,
        budgets: state.budgets,
        secrets: tenantSecrets.store,
        append: audit.append,
        auditBundle: async (tenant) => {
          await checkpointer.sealNow(tenant);
          return exportBundle(tenant, {});
        },
        clock,
      },
      delete: {
        revoke: (input) => killSwitch.revoke(input),
        shred: async (tenant) => {
          const outcome = await shredTenantKeys({ ...tenantSecrets, argumentKeys: [{ where: state.kind === 'embedded' ? dataDir : 'shared state', shred: (t, at) => state.argumentKeys.shred(t, at) }] }, tenant);
          argumentMacs.forget(tenant);
          return outcome;
        },
        sessions: state.sessions,
        approvals: state.approvals,
        quotas: state.quotas,
        budgets: state.budgets,
        log: state.audit,
        append: audit.append,
        seal: (tenant) => checkpointer.sealNow(tenant),
        purge: {
          signer: () => auditKeys.signer(),
          now: () => clock.now(),
          async remove(tenant) {
            // Nothing of the stream is signed again once it is gone; then the records, then the checkpoints.
            await checkpointer.forget(tenant);
            await state.audit.purge(tenant);
            await state.checkpoints.purge(tenant);
          },
        },
      },
      countersign: { issuer: policy.broker.issuer, signer: () => auditKeys.signer(), now: () => clock.now() },
    },
    health: {
      registry: metrics.registry,
      policyVersion: () => livePolicy.version(),
      readiness: async () => ({ ...(await state.ready()), signing_key: signingKeyReadiness(keyRing), ...(await credentials.ready()) }),
      // The security stream is not a tenant: its calls are denies already, and it is sealed the same way.
      degradedTenants: () => [...(state.audit.locked?.().keys() ?? [])].filter((stream) => stream !== SECURITY_STREAM).length,
    },
  });

  // Rotation starts before serving: an overdue key ring (the broker was down) steps once here.
  await keyRotation.start();
  await auditKeyRotation.start();
  checkpointer.start();
  await tls?.start();
  bindRotationMetrics(metrics, { clock, keys: () => keyRing.status(), nextKeyRotationAt: () => keyRotation.nextRotationAt(), serverCertificate: () => tls?.serverCertificate.status(), caIssuedAt: () => tls?.caIssuedAt() });

  async function reloadPolicy(operator?: string, announce = true): Promise<ReloadResult> {
    let result: ReloadResult;
    try {
      result = await livePolicy.reload();
    } catch (err) {
      metrics.policyReloads.inc({ result: 'refused' });
      logger.warn({ err: err instanceof PolicyError ? { message: err.message, issues: err.issues } : err, operator }, 'policy reload refused; the old policy keeps serving');
      throw err;
    }
    metrics.policyReloads.inc({ result: result.changed ? 'applied' : 'unchanged' });
    if (!result.changed) return result;
    metrics.policyVersion.reset();
    metrics.policyVersion.set({ version: result.version }, 1);
    logger.info({ version: result.version, previous: result.previous_version, operator, tenants: { added: result.diff.tenants.added.length, removed: result.diff.tenants.removed.length, changed: result.diff.tenants.changed.length } }, 'policy reloaded');
    const { added, removed, changed } = result.diff.tenants;
    const detail = `policy ${result.previous_version} -> ${result.version}`;
    // Evidence in each affected tenant's own stream; a failed write is logged, the reload stands.
    await Promise.all(
      [...added, ...removed, ...changed].map((tenant) =>
        audit.append(tenant, { type: 'policy', operator, detail, policy_version: result.version }).catch((err) => logger.warn({ err, tenant }, 'could not record the policy change in the tenant audit stream')),
      ),
    );
    if (announce) await state.policyChanges?.announce();
    if (options.releaseHeap) releaseHeapAndLog('after a policy reload');
    return result;
  }

  function releaseHeapAndLog(when: string): void {
    const heap = releaseUnusedHeap();
    const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
    const numbers = { committed_mb: mb(heap.committedBeforeBytes), rss_before_mb: mb(heap.rssBeforeBytes), rss_after_mb: mb(heap.rssAfterBytes), ms: Math.round(heap.ms) };
    logger.info(numbers, heap.released ? `unused heap released ${when}` : `heap small ${when}: nothing to release`);
  }
  // Another replica reloaded: read our own file too (never announced again, so replicas do not echo).
  state.policyChanges?.onChange(() => {
    if (options.loadPolicy) reloadPolicy('(announced by another replica)', false).catch(() => undefined);
  });

  const servers: Server[] = [];
  const socketFiles: Array<{ close: () => void }> = [];
  if (options.releaseHeap) releaseHeapAndLog('after the start');
  return {
    app,
    get policy() {
      return livePolicy.current();
    },
    livePolicy,
    reloadPolicy: (operator) => reloadPolicy(operator),
    state,
    audit: { append: audit.append, keys: auditKeys, evidence, checkpointer },
    keyRing,
    rotation: { keys: keyRotation, tls },
    tokens,
    authorizer,
    argumentMacs,
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
    async listenSocket(path, mode) {
      // Plain HTTP even with TLS on: the socket's file mode guards the transport, and client
      // certificates cannot be presented over it (bearer keys authenticate as they do over TCP).
      const server = createServer(app);
      server.keepAliveTimeout = 65_000;
      socketFiles.push(await listenOnSocket(server, path, mode));
      servers.push(server);
      return { server, url: `unix:${path}` };
    },
    async close() {
      await keyRotation.stop();
      await auditKeyRotation.stop();
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
      for (const file of socketFiles) file.close();
      await credentials.close();
      standalone?.close();
      // After the servers stopped taking calls and before the audit closes: the last summaries are written.
      await denies.close();
      // The shutdown checkpoint: everything this process committed is signed before the log closes,
      // including the allow records of calls answered on their intent and still being written.
      await state.audit.settled();
      await checkpointer.close();
      await state.close();
    },
  };
}
