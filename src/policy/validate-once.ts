import { z, type ZodType } from 'zod';

/**
 * Large deployments repeat themselves: at 10,000 tenants × 100 tools most of the million tool entries
 * are the same few settings, and every principal lists the same tools. Validating each copy is most of
 * a load's time (zod spends about a microsecond on each record entry), and keeping each copy is most
 * of the heap the policy holds. A schema wrapped here validates each distinct JSON text once per load
 * and hands every identical copy the same parsed object, which the loader then deep-freezes, so no
 * reader can tell.
 *
 * Identity is the JSON text, which is exact for what a policy is made of (JSON or YAML data). Only
 * successes are remembered, and any failure is reported by zod itself on the whole value, so errors
 * (paths, wording, order) are exactly what the plain schema says. Only leaves that carry no identity
 * are shared (tool settings, tool-name lists, quota settings); tenant, principal and credential
 * objects never are, so a lookup keyed by one of those objects cannot answer for another tenant.
 * Outside `validatingOnce` a wrapped schema just validates.
 */

/** Each wrapper → the plain schema it stands for (what it validates with, and what documents it). */
const documentedBy = new WeakMap<object, ZodType>();
/** While a load runs: per schema, JSON text (or a record key) → the parsed value. */
let memo: Map<ZodType, Map<string, unknown>> | undefined;
const INVALID = Symbol('invalid');

/** `schema`, validated once per distinct value. */
export function validatedOnce<T extends ZodType>(schema: T): ZodType<z.output<T>, unknown> {
  return wrap(schema, (value) => once(schema, seenBy(schema), value, jsonText(value)));
}

/**
 * `z.record(keys, values)`, with each distinct key and each distinct value validated once: the entries
 * themselves cost a record most of its time, so the loop over them is plain JavaScript.
 */
export function recordValidatedOnce<K extends ZodType<string, string>, V extends ZodType>(keys: K, values: V): ZodType<Record<z.output<K>, z.output<V>>, unknown> {
  return wrap(z.record(keys, values), (input) => {
    if (input === null || typeof input !== 'object' || Object.getPrototypeOf(input) !== Object.prototype) return INVALID;
    const keysSeen = seenBy(keys);
    const valuesSeen = seenBy(values);
    // A copy whose values are then replaced: its keys (and their order) are the input's, as in zod's
    // output, and replacing an own "__proto__" value sets that value, never the prototype.
    const parsed: Record<string, unknown> = { ...input };
    for (const key of Object.keys(parsed)) {
      if (once(keys, keysSeen, key, key) !== key) return INVALID; // an invalid key, or one the schema rewrites
      const value = once(values, valuesSeen, parsed[key], jsonText(parsed[key]));
      if (value === INVALID) return INVALID;
      parsed[key] = value;
    }
    return parsed;
  });
}

/** Runs `parse` (synchronous) with a fresh memo, dropped when it returns. */
export function validatingOnce<R>(parse: () => R): R {
  const outer = memo;
  memo = new Map();
  try {
    return parse();
  } finally {
    memo = outer;
  }
}

/** The plain schema a wrapper stands for, for documentation (JSON Schema) that must describe it. */
export function schemaValidatedOnce(wrapper: object): ZodType | undefined {
  return documentedBy.get(wrapper);
}

/** A schema that tries `fast` under a memo and otherwise (or when that finds a failure) runs `plain`. */
function wrap<T extends ZodType>(plain: T, fast: (value: unknown) => unknown): ZodType<z.output<T>, unknown> {
  const wrapper = z.unknown().transform((value, ctx): z.output<T> => {
    if (memo) {
      const parsed = fast(value);
      if (parsed !== INVALID) return parsed as z.output<T>;
    }
    const result = plain.safeParse(value);
    if (result.success) return result.data;
    // Issue paths are relative to this value; the enclosing object or record prefixes its own.
    for (const issue of result.error.issues) ctx.issues.push(issue as (typeof ctx.issues)[number]);
    return z.NEVER;
  });
  documentedBy.set(wrapper, plain);
  return wrapper;
}

function seenBy(schema: ZodType): Map<string, unknown> {
  let seen = memo!.get(schema);
  if (!seen) memo!.set(schema, (seen = new Map()));
  return seen;
}

function once(schema: ZodType, seen: Map<string, unknown>, value: unknown, key: string | undefined): unknown {
  if (key !== undefined) {
    const parsed = seen.get(key);
    if (parsed !== undefined || seen.has(key)) return parsed;
  }
  const result = schema.safeParse(value);
  if (!result.success) return INVALID;
  if (key !== undefined) seen.set(key, result.data);
  return result.data;
}

/** The memo key, or none for what has no JSON text (a cycle through YAML aliases, a BigInt). */
function jsonText(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}
