/**
 * Turns an upstream secret document into the one string a tool call gets. With `field`, only that key's
 * value leaves the adapter (a tool that needs the API key does not also receive the admin password kept
 * next to it); without it, the whole document as JSON. Only own properties count, so a `field` of
 * "constructor" or "__proto__" finds nothing instead of something from Object.prototype.
 *
 * Returns undefined when there is nothing to hand out; the adapter answers that as unavailable.
 */
export function selectField(document: unknown, field?: string): string | undefined {
  if (field === undefined) {
    if (typeof document === 'string') return document;
    if (document === null || document === undefined) return undefined;
    return JSON.stringify(document);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) return undefined;
  if (!Object.hasOwn(document, field)) return undefined;
  return scalar((document as Record<string, unknown>)[field]);
}

/** A JSON document given as text (AWS SecretString); undefined when it is not a JSON object. */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function scalar(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return undefined;
  return JSON.stringify(value);
}
