import type { Deny } from './broker-client';

/**
 * What the MCP client sees when Bulkhead says no, and the last check on what it sees when Bulkhead
 * said yes. A deny is a tool error result (not a protocol error), so the model reads the reason and can
 * act on it; the reason code is also in `_meta` for programs.
 */

export const DENY_META_KEY = 'bulkhead/deny';

/** A tools/call result as both SDK majors shape it (their CallToolResult types are structurally this). */
export interface ToolResult {
  content: Array<{ type: string; [key: string]: unknown }>;
  isError?: boolean;
  structuredContent?: unknown;
  _meta?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface DenyMeta {
  reason: string;
  message: string;
  approval_id?: string;
  retry_after?: number;
}

export function denyResult(deny: Pick<Deny, 'reason' | 'message' | 'approval_id' | 'retry_after'>): ToolResult & { content: Array<{ type: 'text'; text: string }> } {
  const meta: DenyMeta = { reason: deny.reason, message: deny.message };
  if (deny.approval_id !== undefined) meta.approval_id = deny.approval_id;
  if (deny.retry_after !== undefined) meta.retry_after = deny.retry_after;
  const extra = [deny.approval_id !== undefined ? `approval_id=${deny.approval_id}` : '', deny.retry_after !== undefined ? `retry_after=${deny.retry_after}s` : '']
    .filter(Boolean)
    .join(' ');
  return {
    isError: true,
    content: [{ type: 'text', text: `Bulkhead denied this call: ${deny.reason}: ${deny.message}${extra ? ` (${extra})` : ''}` }],
    _meta: { [DENY_META_KEY]: meta },
  };
}

export const REDACTED = '[redacted by bulkhead]';

/**
 * Replaces every occurrence of `secret` in every string of `value` (keys included), so a handler that
 * echoes its credential — in a result, an error message, structured content — does not hand it to the
 * client. Returns the cleaned copy and whether anything was found.
 */
export function redactSecret<T>(value: T, secret: string): { value: T; found: boolean } {
  if (secret.length === 0) return { value, found: false };
  let found = false;
  const clean = (text: string): string => {
    if (!text.includes(secret)) return text;
    found = true;
    return text.split(secret).join(REDACTED);
  };
  const walk = (node: unknown, depth: number): unknown => {
    if (typeof node === 'string') return clean(node);
    if (node === null || typeof node !== 'object') return node;
    if (depth > 64) {
      // Too deep to walk: withhold the whole branch if the secret is anywhere in it.
      if (!(JSON.stringify(node) ?? '').includes(secret)) return node;
      found = true;
      return REDACTED;
    }
    if (Array.isArray(node)) return node.map((item) => walk(item, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(node)) out[clean(key)] = walk(item, depth + 1);
    return out;
  };
  const result = walk(value, 0) as T;
  return { value: result, found };
}
