import { sha256Hex } from '../crypto/hash';
import type { Policy } from '../policy/schema';

/**
 * How a requested tool name is written into the audit record and deny messages. A name the calling
 * server serves is operator-authored policy text and is kept as is; any other name is text the agent
 * chose, possibly a secret it wants to plant in the audit trail or see echoed back, so it is recorded
 * only as its SHA-256 (enough to tell two attempts apart, nothing to read back) and never echoed.
 */
export const UNKNOWN_TOOL = '(unknown)';

export type RecordedTool = { tool: string; tool_sha256?: string };

export function recordedTool(policy: Policy, server: string, tool: string): RecordedTool {
  const served = Object.hasOwn(policy.servers, server) ? policy.servers[server]!.tools : [];
  return served.includes(tool) ? { tool } : { tool: UNKNOWN_TOOL, tool_sha256: sha256Hex(tool) };
}

/** The tool as a deny message may name it: quoted when it is known, not at all otherwise. */
export function toolInMessage(recorded: RecordedTool): string {
  return recorded.tool_sha256 === undefined ? `tool "${recorded.tool}"` : 'this tool (not one this server serves)';
}
