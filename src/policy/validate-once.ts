import { z, type ZodType } from 'zod';
import { deepFreeze } from './deep-freeze';

/**
 * Large deployments repeat themselves: at 10,000 tenants × 100 tools most of the million tool entries
 * are the same few settings, and every principal lists the same tools. Validating each copy is most of
 * a load's time (zod spends about a microsecond on each record entry), and keeping each copy is most
 * of the heap the policy holds. A schema wrapped here validates each distinct JSON text once per load
 * and hands every identical copy the same parsed object, deep-frozen (as the loader freezes the whole
 * policy), so no reader can tell. A record is frozen as soon as it is built, which spares the loader's
 * final freeze a walk over its million entries.
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
let memo: Map<object, Map<string, unknown>> | undefined;
const INVALID = Symbol('invalid');

/** `schema`, validated once per distinct value; a value equal to the previous one is known without its JSON text. */
export function validatedOnce<T extends ZodType>(schema: T): ZodType<z.output<T>, unknown> {
  const lastOne = {};
  return wrap(schema, (value) => {
    const last = seenBy(lastOne) as Map<'', [raw: unknown, parsed: unknown]>;
    const previous = last.get('');
    if (previous && sameJson(previous[0], value)) return previous[1];
    const parsed = once(schema, seenBy(schema), value, jsonText(value));
    if (parsed !== INVALID) last.set('', [value, parsed]);
    return parsed;
  });
}

/**
 * `z.record(keys, values)`, with each distinct key and each distinct value validated once: the entries
 * themselves cost a record most of its time, so the loop over them is plain JavaScript. Policies made
 * from a template repeat a key's value from one record to the next, so a value equal to the one the
 * same key had last time is recognised without building its JSON text.
 */
export function recordValidatedOnce<K extends ZodType<string, string>, V extends ZodType>(keys: K, values: V): ZodType<Record<z.output<K>, z.output<V>>, unknown> {
  const lastUnderKey = {};
  return wrap(z.record(keys, values), (input) => {
    if (input === null || typeof input !== 'object' || Object.getPrototypeOf(input) !== Object.prototype) return INVALID;
    const keysSeen = seenBy(keys);
    const valuesSeen = seenBy(values);
    const last = seenBy(lastUnderKey) as Map<string, [raw: unknown, parsed: unknown]>;
    // A copy whose values are then replaced: its keys (and their order) are the input's, as in zod's
    // output, and replacing an own "__proto__" value sets that value, never the prototype.
    const parsed: Record<string, unknown> = { ...input };
    for (const key of Object.keys(parsed)) {
      const previous = last.get(key); // a key with a previous value has been validated
      if (!previous && once(keys, keysSeen, key, key) !== key) return INVALID; // an invalid key, or one the schema rewrites
      const raw = parsed[key];
      if (previous && sameJson(previous[0], raw)) {
        parsed[key] = previous[1];
        continue;
      }
      const value = once(values, valuesSeen, raw, jsonText(raw));
      if (value === INVALID) return INVALID;
      last.set(key, [raw, value]);
      parsed[key] = value;
    }
    return Object.freeze(parsed);
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

function seenBy(schema: object): Map<string, unknown> {
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
  if (key !== undefined) seen.set(key, deepFreeze(result.data));
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

/**
 * Whether two JSON values have the same JSON text (order of keys included), without building it.
 * Anything that is not plain JSON data (a class instance, a NaN) is "not the same", which only costs
 * the slower path.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return typeof a !== 'number' || Number.isFinite(a);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b) || Object.getPrototypeOf(a) !== Object.prototype || Object.getPrototypeOf(b) !== Object.prototype) return false;
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  for (let i = 0; i < keysA.length; i++) {
    if (keysA[i] !== keysB[i] || !sameJson((a as Record<string, unknown>)[keysA[i]!], (b as Record<string, unknown>)[keysB[i]!])) return false;
  }
  return true;
}
