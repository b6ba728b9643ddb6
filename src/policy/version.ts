import { canonicalJsonSha256 } from '../crypto/hash';
import { perPolicy } from './per-policy';

/**
 * A policy's version: the first 16 hex digits of the SHA-256 of its validated form as canonical JSON.
 * Two files that differ only in layout, comments, key order or spelled-out defaults are one version;
 * `bulkhead policy check FILE` prints the version a broker will report for that file.
 */
export const policyVersion = perPolicy((policy) => canonicalJsonSha256(policy).slice(0, 16));
