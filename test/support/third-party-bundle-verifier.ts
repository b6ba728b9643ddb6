import { createHash, createPublicKey, verify } from 'node:crypto';

// `canonicalize` is ESM-only; jest.config.js turns it into CommonJS, so require finds its default export.
const canonicalize = (require('canonicalize') as { default: (value: unknown) => string | undefined }).default;

/**
 * A bundle verifier as a third party would write it from docs/audit-bundle.md, with stock libraries
 * only: node:crypto (SHA-256, Ed25519) and the `canonicalize` package (RFC 8785). It imports nothing of
 * Bulkhead's, so if the format drifts from its documentation, this is what notices.
 * Returns the problems found; an empty list means the bundle verifies.
 */
type Json = any;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const jcs = (value: unknown) => {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('not JSON');
  return text;
};
const linesDigest = (items: unknown[]) => sha256(items.map((i) => jcs(i) + '\n').join(''));

function signatureOk(keys: Json[], kid: string, data: string, signature: string): boolean {
  const key = keys.find((k) => k.kid === kid);
  if (!key || key.kty !== 'OKP' || key.crv !== 'Ed25519') return false;
  // RFC 7638: the kid is the SHA-256 thumbprint of the required members, in lexicographic order.
  const thumbprint = createHash('sha256').update(jcs({ crv: key.crv, kty: key.kty, x: key.x })).digest('base64url');
  if (thumbprint !== kid) return false;
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.x }, format: 'jwk' });
  return verify(null, Buffer.from(data, 'utf8'), publicKey, Buffer.from(signature, 'base64url'));
}

export function thirdPartyVerify(bundle: Json, pinnedKeys?: Json[]): string[] {
  const problems: string[] = [];
  const keys: Json[] = pinnedKeys ?? bundle.keys.keys;
  const { manifest, signature, records, checkpoints } = bundle;
  if (manifest.kind !== 'bulkhead-audit-bundle-manifest') problems.push('manifest kind');
  if (!signatureOk(keys, signature.kid, jcs(manifest), signature.value)) problems.push('manifest signature');
  if (linesDigest(records) !== manifest.records.sha256) problems.push('records digest');
  if (linesDigest(checkpoints) !== manifest.checkpoints.sha256) problems.push('checkpoints digest');
  if (sha256(jcs(bundle.keys) + '\n') !== manifest.keys_sha256) problems.push('keys digest');

  const hashes = new Map<number, string>();
  records.forEach((record: Json, i: number) => {
    const { hash, ...body } = record;
    if (record.tenant !== manifest.tenant) problems.push(`record ${record.seq}: tenant`);
    if (sha256(jcs(body)) !== hash) problems.push(`record ${record.seq}: hash`);
    if (i > 0 && (record.seq !== records[i - 1].seq + 1 || record.prev_hash !== records[i - 1].hash)) problems.push(`record ${record.seq}: chain`);
    if (record.seq === 1 && record.prev_hash !== '0'.repeat(64)) problems.push('record 1: genesis');
    hashes.set(record.seq, hash);
  });
  for (const checkpoint of checkpoints) {
    const { sig, ...body } = checkpoint;
    if (body.kind !== 'bulkhead-audit-checkpoint' || body.tenant !== manifest.tenant) problems.push(`checkpoint ${body.seq}: kind or tenant`);
    if (!signatureOk(keys, body.kid, jcs(body), sig)) problems.push(`checkpoint ${body.seq}: signature`);
    if (hashes.get(body.seq) !== body.hash) problems.push(`checkpoint ${body.seq}: does not match its record`);
  }
  const last = records[records.length - 1];
  if (last && !checkpoints.some((c: Json) => c.seq === last.seq)) problems.push('last record not signed by a checkpoint');
  return problems;
}
