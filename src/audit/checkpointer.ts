import type { Clock } from '../clock';
import type { AuditRecord } from './audit-log';
import type { AuditSigner } from './audit-keys';
import type { ChainHead } from './chain';
import { signCheckpoint, type CheckpointRule } from './checkpoint';
import type { CheckpointStore } from './checkpoint-store';

/**
 * Signs checkpoints of the heads this process committed, by the rule the checkpoint itself states:
 * - the first record a tenant gets after a start is sealed at once (so a tail a crash left unsealed
 *   is covered as soon as the tenant is busy again);
 * - whenever a record crosses a multiple of `every` (seq 1000, 2000, …), so whichever replica commits
 *   the record at a boundary signs it, and a verifier can demand a checkpoint at or after each one;
 * - every `intervalMs` for a tenant with records not yet sealed;
 * - at close, for every tenant with records not yet sealed.
 *
 * Only records this process was told are durable are signed — never a head read back from storage,
 * which someone else may have written. Checkpoints are off the authorize path: a failure is reported
 * (and retried at the next trigger), never turned into a deny.
 */
export interface CheckpointerDeps {
  store: Pick<CheckpointStore, 'add'>;
  signer: () => AuditSigner;
  clock: Clock;
  rule: CheckpointRule;
  onError?: (err: unknown, tenant: string) => void;
}

export interface Checkpointer {
  /** Tells the checkpointer a record is durable. */
  observe(record: Pick<AuditRecord, 'tenant' | 'seq' | 'hash'>): void;
  /** Signs the latest record seen for the tenant (or every tenant) if it is not sealed yet. */
  sealNow(tenant?: string): Promise<void>;
  /** Forgets a purged stream's head (after any checkpoint of it in flight), so nothing of it is signed again. */
  forget(tenant: string): Promise<void>;
  start(): void;
  close(): Promise<void>;
}

interface TenantHeads {
  latest: ChainHead;
  /** Last seq signed by this process; undefined until the first checkpoint after start. */
  sealed?: number;
  running?: Promise<void>;
}

export function createCheckpointer(deps: CheckpointerDeps): Checkpointer {
  const { rule } = deps;
  const tenants = new Map<string, TenantHeads>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const boundary = (seq: number) => Math.floor(seq / rule.every);
  const unsealed = (t: TenantHeads) => t.sealed === undefined || t.latest.seq > t.sealed;

  function seal(tenant: string, heads: TenantHeads): Promise<void> {
    if (heads.running) return heads.running.then(() => (unsealed(heads) ? seal(tenant, heads) : undefined));
    const head = heads.latest;
    heads.running = (async () => {
      try {
        await deps.store.add(signCheckpoint(deps.signer(), tenant, head, deps.clock.now(), rule));
        heads.sealed = Math.max(heads.sealed ?? 0, head.seq);
      } catch (err) {
        deps.onError?.(err, tenant);
      } finally {
        heads.running = undefined;
      }
    })();
    return heads.running;
  }

  async function sealAll(only?: string): Promise<void> {
    await Promise.all([...tenants].filter(([tenant, heads]) => (only === undefined || tenant === only) && unsealed(heads)).map(([tenant, heads]) => seal(tenant, heads)));
  }

  return {
    observe(record) {
      let heads = tenants.get(record.tenant);
      if (!heads) {
        heads = { latest: { seq: record.seq, hash: record.hash } };
        tenants.set(record.tenant, heads);
        void seal(record.tenant, heads);
        return;
      }
      if (record.seq <= heads.latest.seq) return;
      const crossed = boundary(record.seq) > boundary(heads.latest.seq);
      heads.latest = { seq: record.seq, hash: record.hash };
      if (crossed && !closed) void seal(record.tenant, heads);
    },

    sealNow: (tenant) => sealAll(tenant),

    async forget(tenant) {
      const heads = tenants.get(tenant);
      tenants.delete(tenant);
      await heads?.running;
    },

    start() {
      if (timer || closed) return;
      timer = setInterval(() => void sealAll(), rule.intervalMs);
      // A pending checkpoint must not keep a CLI or a test process alive on its own.
      timer.unref();
    },

    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await sealAll();
    },
  };
}
