/**
 * `bulkhead/mcp/v2`: protect an MCP server built on SDK 2.x (`@modelcontextprotocol/server`, protocol
 * 2026-07-28) with Bulkhead. For SDK 1.x servers and 2025-11-25 clients, use `bulkhead/mcp`. See docs/mcp.md.
 */
export { createBulkheadMcp, type BulkheadMcpV2, type BulkheadMcpV2Options, type ProtectedServerSetupV2 } from './bulkhead-mcp';
export { protectV2 as protect, isProtectedV2 as isProtected } from './protect';
export { createToolGuardV2, APPROVAL_INPUT, type ToolGuardV2, type ToolGuardV2Options } from './tool-guard';
export { createApprovalStateCodec, type ApprovalState, type ApprovalStateCodec } from './approval-state';
export { bulkheadCall, type BulkheadCall } from '../call-grant';
export { BulkheadHandleError, type CallHandles, type HandleScope, type MintOptions } from '../handles';
export type { ApprovalWait, PendingApproval, GuardLogger } from '../call-pipeline';
export { DENY_META_KEY, type DenyMeta } from '../tool-results';
