import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ZodError } from 'zod';
import { policySchema, type Policy } from './schema';
import { deepFreeze } from './deep-freeze';
import { validatingOnce } from './validate-once';

/** A policy that failed to load. The message names the file and the first offending path. */
export class PolicyError extends Error {
  constructor(message: string, readonly issues: string[] = []) {
    super(message);
    this.name = 'PolicyError';
  }
}

export function loadPolicyFile(file: string): Policy {
  return parsePolicy(readPolicyData(file), file);
}

/** The file's data. Its own function so the text (44 MB at 10,000 tenants) is garbage before validation starts. */
function readPolicyData(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyError(`${file}: cannot read policy file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const json = extname(file).toLowerCase() === '.json';
  let data: unknown;
  try {
    data = json ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new PolicyError(`${file}: not valid ${json ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  // A policy is JSON data. A YAML alias inside the node it names makes a cycle, which no JSON text has
  // and which validation and the version hash would walk until the stack runs out.
  if (!json) {
    try {
      JSON.stringify(data);
    } catch {
      throw new PolicyError(`${file}: not valid YAML for a policy: an alias refers to a node that contains it (a policy is JSON data)`);
    }
  }
  return data;
}

/** Validates a policy object once and freezes it, so nothing downstream can mutate it. */
export function parsePolicy(raw: unknown, source = 'policy'): Policy {
  const result = validatingOnce(() => policySchema.safeParse(raw ?? {}));
  if (!result.success) {
    const issues = describeIssues(result.error, raw ?? {});
    throw new PolicyError(`${source}: ${issues[0]}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`, issues);
  }
  return deepFreeze(result.data);
}

/**
 * One line per issue, naming the path. `input` is what was parsed: a field that is absent reads
 * "Required" whatever schema it failed (zod 4 words that per type), so clients see one wording.
 */
export function describeIssues(error: ZodError, input?: unknown): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.join('.') || '(root)';
    if (issue.code === 'unrecognized_keys') return `${path}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    // A record key that fails its schema: the key schema's own message says what an id must look like.
    if (issue.code === 'invalid_key') return `${path}: ${issue.issues[0]?.message ?? issue.message}`;
    if (issue.code !== 'custom' && input !== undefined && issue.path.length > 0 && valueAt(input, issue.path) === undefined) return `${path}: Required`;
    return `${path}: ${plainMessage(issue.message)}`;
  });
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** zod 4 says "Invalid input: expected number, received string"; clients know the shorter wording. */
function plainMessage(message: string): string {
  const typeError = /^Invalid input: expected (\S+), received (\S+)$/.exec(message);
  return typeError ? `Expected ${typeError[1]}, received ${typeError[2]}` : message;
}
