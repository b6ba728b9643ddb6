import type Redis from 'ioredis';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Clock } from '../clock';
import { createKeyRing } from '../tokens/key-ring';
import { createSealedKeyStore } from '../tokens/key-store';
import { boundedCheck, notReady, READINESS_TIMEOUT_MS, READY } from '../observability/readiness';
import type { BrokerState } from './broker-state';
import { createPostgresAuditLog } from './postgres/audit-log';
import { createArgumentKeyTable } from './postgres/argument-key-table';
import { createCheckpointTable } from './postgres/checkpoint-table';
import { createPostgresKeyStorage } from './postgres/key-storage';
import { createPostgresLeaderLock, type PostgresLeaderLock } from './postgres/leader-lock';
import { createPgPool, inTransaction } from './postgres/pool';
import { createQuarantineTable } from './postgres/quarantine-table';
import { createRevocationTable } from './postgres/revocation-table';
import { assertSchema } from './postgres/schema';
import { createRedisOneTimeStore } from './redis/one-time-store';
import { createRedisApprovalStore } from './redis/approval-store';
import { connectRedis, createRedisClient } from './redis/client';
import { createFeedSigner } from './redis/feed-signer';
import { createRedisBudgetStore } from './redis/budget-store';
import { createChangeFeed } from './redis/change-feed';
import { createKeyspace } from './redis/keyspace';
import { createRedisQuotaStore } from './redis/quota-store';
import { createRevocationFeed } from './redis/revocation-feed';
import { createRedisSessionStore } from './redis/session-store';
import { describeUrl } from './safe-url';
import { createSharedRevocationStore } from './shared-revocation-store';

/**
 * Scale-out state: many replicas behind a load balancer behave as one broker. The authorize pipeline
 * sees the same interfaces as the embedded default; only where the state lives changes.
 *
 *   PostgreSQL  revocations (durable), audit chains and their signed checkpoints, sealed signing and
 *               audit keys, argument keys, rotation leases, quarantines
 *   Redis       revocation push (pub/sub), quotas and concurrency, sessions and calls, approvals,
 *               the hot copy of quarantines
 *
 * Everything fails closed: every Redis command and PostgreSQL query is bounded by `timeoutMs`, and an
 * error anywhere becomes a 503 deny (state_unavailable, or audit_unavailable for the audit write); the
 * connections reconnect on their own, so the broker recovers without a restart.
 */
export interface SharedStateOptions {
  redisUrl: string;
  postgresUrl: string;
  /** Namespace for every Redis key and channel (`broker.state.redis_prefix`). */
  redisPrefix: string;
  masterKey: Buffer;
  clock: Clock;
  logger: Logger;
  /** Bound on each Redis command and PostgreSQL query, and on connecting (default 2 s). */
  timeoutMs?: number;
  /** How long start-up may wait for Redis, PostgreSQL and the first revocation sync (default 15 s). */
  startTimeoutMs?: number;
  revocations?: { heartbeatMs?: number; staleAfterMs?: number; ackTimeoutMs?: number; reconcileMs?: number };
  auditGroupCommitMs?: number;
}

export interface SharedState extends BrokerState {
  kind: 'shared';
  leaderLock: PostgresLeaderLock;
}

/** The rotation lease's name in bulkhead_leases. */
export const SIGNING_KEY_LOCK = 'signing-key-rotation';
export const AUDIT_KEY_LOCK = 'audit-key-rotation';

export async function createSharedState(options: SharedStateOptions): Promise<SharedState> {
  const { clock } = options;
  const logger = options.logger.child({ component: 'shared-state' });
  const timeoutMs = options.timeoutMs ?? 2000;
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  const complain = throttled(logger);

  const pool: Pool = createPgPool({ url: options.postgresUrl, timeoutMs, onIdleError: (err) => complain('postgres', err) });
  const redis: Redis = createRedisClient({ url: options.redisUrl, timeoutMs, name: `bulkhead:commands:${options.redisPrefix}`, onError: (err) => complain('redis', err) });
  const subscriber: Redis = createRedisClient({ url: options.redisUrl, timeoutMs, name: `bulkhead:revocations:${options.redisPrefix}`, onError: (err) => complain('redis', err) });
  const closers: Array<() => Promise<unknown>> = [() => pool.end(), () => quit(redis), () => quit(subscriber)];
  const closeAll = async () => {
    for (const close of [...closers].reverse()) await close().catch(() => undefined);
  };

  try {
    await assertSchema(pool).catch((err) => {
      throw new Error(`PostgreSQL at ${describeUrl(options.postgresUrl)}: ${(err as Error).message}`, { cause: err });
    });
    await Promise.all([connectRedis(redis, options.redisUrl, startTimeoutMs), connectRedis(subscriber, options.redisUrl, startTimeoutMs)]);

    const keyspace = createKeyspace(options.redisPrefix);
    const keyChanges = createChangeFeed({ redis, subscriber, channel: keyspace.keysChannel, what: 'key ring', logger });
    closers.push(async () => keyChanges.close());
    const policyChanges = createChangeFeed({ redis, subscriber, channel: keyspace.policyChannel, what: 'policy', logger });
    closers.push(async () => policyChanges.close());
    const keys = createSealedKeyStore(options.masterKey, createPostgresKeyStorage(pool, { onWritten: () => void keyChanges.announce() }));
    // Replicas starting together on an empty database must agree on one key ring: the first to take
    // this lock creates it, the others wait and then load it.
    await inTransaction(pool, async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext('bulkhead:signing-keys'))");
      await createKeyRing({ store: keys, clock, maxTokenTtlMs: 0, clockSkewMs: 0 }).init();
    });

    const revocations = createSharedRevocationStore({
      table: createRevocationTable(pool),
      logger,
      clock,
      reconcileMs: options.revocations?.reconcileMs,
      createFeed: (hooks) =>
        createRevocationFeed({
          redis,
          subscriber,
          keyspace,
          signer: createFeedSigner(options.masterKey),
          logger,
          heartbeatMs: options.revocations?.heartbeatMs,
          staleAfterMs: options.revocations?.staleAfterMs,
          ackTimeoutMs: options.revocations?.ackTimeoutMs,
          ...hooks,
        }),
    });
    closers.push(() => revocations.close());
    await revocations.start(startTimeoutMs);

    const audit = createPostgresAuditLog({ pool, clock, groupCommitMs: options.auditGroupCommitMs, timeoutMs });
    closers.push(() => audit.close());
    const auditKeys = createSealedKeyStore(options.masterKey, createPostgresKeyStorage(pool, { table: 'bulkhead_audit_keys' }), 'audit-key');
    // As for the signing keys: replicas starting together agree on one audit key ring.
    await inTransaction(pool, async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext('bulkhead:audit-keys'))");
      await createKeyRing({ store: auditKeys, clock, maxTokenTtlMs: Number.POSITIVE_INFINITY, clockSkewMs: 0 }).init();
    });
    const leaderLock = createPostgresLeaderLock({ pool, name: SIGNING_KEY_LOCK, onError: (err) => complain('postgres', err) });
    const auditKeyLock = createPostgresLeaderLock({ pool, name: AUDIT_KEY_LOCK, onError: (err) => complain('postgres', err) });
    logger.info({ redis: describeUrl(options.redisUrl), postgres: describeUrl(options.postgresUrl), prefix: options.redisPrefix, holder: leaderLock.holder }, 'shared state ready');

    return {
      kind: 'shared',
      revocations,
      quotas: createRedisQuotaStore({ redis, keyspace }),
      budgets: createRedisBudgetStore({ redis, keyspace }),
      sessions: createRedisSessionStore({ redis, keyspace, quarantines: createQuarantineTable(pool), clock }),
      approvals: createRedisApprovalStore({ redis, keyspace }),
      oneTime: createRedisOneTimeStore({ redis, keyspace }),
      audit,
      checkpoints: createCheckpointTable(pool),
      keys,
      argumentKeys: createArgumentKeyTable(pool),
      auditKeys,
      leaderLock,
      auditKeyLock,
      onKeysChanged: (listener) => keyChanges.onChange(listener),
      policyChanges: { announce: () => policyChanges.announce(), onChange: (listener) => policyChanges.onChange(listener) },
      onKill: (listener) => revocations.onKill(listener),
      announceKill: (key) => revocations.announceKill(key),
      async ready() {
        const [postgres, redisUp] = await Promise.all([
          boundedCheck(() => audit.ready!(), READINESS_TIMEOUT_MS, 'postgres'),
          boundedCheck(() => redis.ping().then(() => READY), READINESS_TIMEOUT_MS, 'redis'),
        ]);
        return { postgres, redis: redisUp, revocations: revocations.live() ? READY : notReady('the revocation feed is not subscribed (kills from other replicas would not arrive)') };
      },
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function quit(client: Redis): Promise<void> {
  // QUIT needs a live connection (there is no offline queue); otherwise just drop it.
  if (client.status === 'ready') await client.quit().catch(() => undefined);
  client.disconnect();
}

/** A backend that is down reports the same error on every reconnect attempt: log it once a minute. */
function throttled(logger: Logger): (backend: 'redis' | 'postgres', err: unknown) => void {
  const last = new Map<string, number>();
  return (backend, err) => {
    const now = Date.now();
    if (now - (last.get(backend) ?? -Infinity) < 60_000) return;
    last.set(backend, now);
    logger.warn({ backend, err: { message: (err as Error)?.message, code: (err as { code?: string })?.code } }, `${backend} connection error (repeats are logged once a minute)`);
  };
}
