/**
 * Vault paths and lease ids the adapter puts into a URL. Paths come from the operator's policy and lease
 * ids from Vault itself, but both end up in `/v1/<here>`, where a "." or ".." segment would be resolved
 * by the URL parser and land the request on another endpoint (`sys/leases/revoke/../../auth/token/...`).
 * So: no empty, "." or ".." segments, no query or fragment characters, and each segment percent-encoded.
 */
const FORBIDDEN = /[?#%\\\u0000-\u001f\u007f]/;

/** A path such as "secret/data/tenants/acme/crm", encoded for the URL; undefined if it is unsafe. */
export function encodeVaultPath(path: string): string | undefined {
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  if (!trimmed || FORBIDDEN.test(trimmed)) return undefined;
  const segments = trimmed.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return segments.map(encodeURIComponent).join('/');
}

/** A database (or any dynamic-secret) role or mount name: one or more simple segments. */
const NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
export function isSimpleName(name: string): boolean {
  return NAME.test(name) && name !== '.' && name !== '..';
}

/**
 * "database/creds/bulkhead-acme/Vz3...": a lease on a dynamic secret (`<mount…>/creds/<role>/<id>`, the
 * id may carry a ".<namespace>" suffix). Anything else is not a lease this adapter issued.
 */
const LEASE = /^(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*\/)+creds\/[A-Za-z0-9_-][A-Za-z0-9_.-]*\/[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)?$/;
export function isDynamicSecretLease(leaseId: string): boolean {
  return LEASE.test(leaseId) && !leaseId.split('/').some((s) => s === '.' || s === '..');
}

/** The part of a lease id that is safe to log: its path without the random id (which can revoke it). */
export function leasePrefix(leaseId: string): string {
  return leaseId.slice(0, leaseId.lastIndexOf('/') + 1);
}
