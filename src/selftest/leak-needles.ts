/**
 * A secret as the byte strings a leak would show it as: raw, base64 (padded and not), base64url and hex
 * in both cases. Used by `bulkhead selftest` on a live deployment's answers and by the test suite's
 * leak scan on logs, files and bodies. Findings name the label, never the value.
 */
export interface Needle {
  label: string;
  bytes: Buffer;
}

export function needlesFor(label: string, value: string): Needle[] {
  const raw = Buffer.from(value, 'utf8');
  const forms: Array<[string, string]> = [
    ['raw', value],
    ['base64', raw.toString('base64')],
    ['base64 (unpadded)', raw.toString('base64').replace(/=+$/, '')],
    ['base64url', raw.toString('base64url')],
    ['hex', raw.toString('hex')],
    ['HEX', raw.toString('hex').toUpperCase()],
  ];
  const seen = new Set<string>();
  return forms.filter(([, text]) => !seen.has(text) && seen.add(text)).map(([form, text]) => ({ label: `${label} (${form})`, bytes: Buffer.from(text, 'utf8') }));
}

/** The labels of every needle found in `haystack`. */
export function findNeedles(needles: readonly Needle[], haystack: string | Buffer): string[] {
  const bytes = typeof haystack === 'string' ? Buffer.from(haystack, 'utf8') : haystack;
  return needles.filter((needle) => bytes.includes(needle.bytes)).map((needle) => needle.label);
}
