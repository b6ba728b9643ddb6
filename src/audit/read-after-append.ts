import type { AuditLog } from './audit-log';

/**
 * Reads that see every record appended before them. An allow on an upstream credential is answered once
 * its intent is durable, and its allow record is durable a batch later (authorizer.ts); without this, an
 * operator reading the stream right after such an answer could find the intent without its allow. A
 * read or verify of a tenant therefore waits for the appends to that tenant already made (written or
 * failed), never for later ones, so a busy tenant's reads wait for one batch at most. `settled` waits
 * for every tenant's, so the shutdown checkpoint signs the allow records answered calls left queued.
 */
export function readingAfterAppends<T extends AuditLog>(log: T): T & { settled(): Promise<void> } {
  const lastAppend = new Map<string, Promise<void>>();
  const settled = (tenant: string) => lastAppend.get(tenant);

  return {
    ...log,
    append(tenant, event) {
      const appended = log.append(tenant, event);
      const done: Promise<void> = appended.then(forget, forget);
      lastAppend.set(tenant, done);
      return appended;

      function forget(): void {
        if (lastAppend.get(tenant) === done) lastAppend.delete(tenant);
      }
    },
    async read(tenant, options) {
      await settled(tenant);
      return log.read(tenant, options);
    },
    async verify(tenant, options) {
      await settled(tenant);
      return log.verify(tenant, options);
    },
    /** Every append made so far has been written or has failed (the shutdown checkpoint waits for this). */
    async settled() {
      await Promise.all(lastAppend.values());
    },
  };
}
