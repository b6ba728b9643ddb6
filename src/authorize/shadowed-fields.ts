import { foldKey } from './fold-key';

/**
 * A field the broker checks (the resource argument) or forces (an injected field) must have exactly one
 * spelling in the arguments. `{path: "acme/ok", PATH: "globex/secret"}` passes a check of `path`, and
 * Go's encoding/json, which matches keys case-insensitively and keeps the last match, then reads
 * globex/secret; so a second key that folds to a checked field is a deny, never passed through.
 *
 * Only the top level is searched: the resource rule and inject name top-level fields, and an injected
 * field replaces whatever the caller nested under any spelling of it. Tenant keys, which may sit at any
 * depth, are searched at every depth by findTenantOverride with the same folding.
 */
export function findShadowingKey(args: Record<string, unknown>, field: string): string | null {
  const folded = foldKey(field);
  return Object.keys(args).find((key) => key !== field && foldKey(key) === folded) ?? null;
}
