/** Sizes in policy are "512b", "64kb", "1mb" (binary units, as express's body limit reads them); parsed to bytes. */
const UNIT_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 * 1024 };

export function parseSize(value: string): number | undefined {
  const match = /^(\d+)(b|kb|mb)$/i.exec(value.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_BYTES[match[2]!.toLowerCase()]!;
}
