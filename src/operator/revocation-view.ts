import type { RevocationRecord, RevocationTarget } from '../revocation/revocation-store';

/** How revocations read to operators: the audit record's `detail`, the API's target, and a listing row. */

export function describeTarget(target: RevocationTarget): string {
  switch (target.kind) {
    case 'tenant':
      return `tenant ${target.tenant}`;
    case 'principal':
      return `principal ${target.tenant}/${target.principal}`;
    case 'session':
      return `session ${target.session}`;
    case 'jti':
      return `token ${target.jti}`;
  }
}

export function publicTarget(target: RevocationTarget): { tenant?: string; session?: string; principal?: string; jti?: string } {
  switch (target.kind) {
    case 'tenant':
      return { tenant: target.tenant };
    case 'principal':
      return { principal: `${target.tenant}/${target.principal}` };
    case 'session':
      return { session: target.session };
    case 'jti':
      return { jti: target.jti };
  }
}

export interface RevocationListing {
  kind: RevocationTarget['kind'];
  /** The id as `revoke` takes it: tenant, "tenant/principal", session id or jti. */
  target: string;
  /** The stream the revoke was recorded in, when known (absent for a forced bare jti or unknown session). */
  tenant?: string;
  reason?: string;
  revoked_at: string;
  /** Absent: until lifted (or, for a tenant, restored). */
  expires_at?: string;
}

export function listingOf(record: RevocationRecord): RevocationListing {
  const tenant = 'tenant' in record.target ? record.target.tenant : record.tenant;
  return {
    kind: record.target.kind,
    target: Object.values(publicTarget(record.target))[0]!,
    ...(tenant === undefined ? {} : { tenant }),
    ...(record.reason === undefined ? {} : { reason: record.reason }),
    revoked_at: new Date(record.at).toISOString(),
    ...(record.expiresAt === undefined ? {} : { expires_at: new Date(record.expiresAt).toISOString() }),
  };
}
