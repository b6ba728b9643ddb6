import { canonicalJsonSha256 } from '../crypto/hash';
import type { Policy } from './schema';

const versions = new WeakMap<Policy, string>();

/**
 * A policy's version: the first 16 hex digits of the SHA-256 of its validated form as canonical JSON.
 * Two files that differ only in layout, comments, key order or spelled-out defaults are one version;
 * `bulkhead policy check FILE` prints the version a broker will report for that file.
 */
export function policyVersion(policy: Policy): string {
  let version = versions.get(policy);
  if (version === undefined) {
    version = canonicalJsonSha256(policy).slice(0, 16);
    versions.set(policy, version);
  }
  return version;
}
