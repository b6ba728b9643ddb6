import { z } from 'zod';
import { bulkheadCall } from '../../src/mcp';
import { CrmAccessError, TABLES, type CrmStore } from './crm-store';

/**
 * The CRM's three tools. Each reads the credential Bulkhead resolved for this call and opens the store
 * with it — that is the whole tenancy model of this server: it never decides a tenant itself. The
 * handlers never see the client's token, and Bulkhead withholds anything that echoes the credential.
 */

/** What both SDK majors' registerTool accept: a raw zod shape, and a handler of (args, extra/ctx). */
export interface ToolRegistrar {
  registerTool(name: string, config: { description: string; inputSchema: z.ZodRawShape; annotations?: { readOnlyHint?: boolean } }, handler: (args: any, extra: object) => Promise<CrmToolResult>): unknown;
}

interface CrmToolResult {
  content: Array<{ type: 'text'; text: string }>;
  isError?: boolean;
}

const json = (value: unknown): CrmToolResult => ({ content: [{ type: 'text', text: JSON.stringify(value) }] });
const refused = (err: unknown): CrmToolResult => {
  if (err instanceof CrmAccessError) return { isError: true, content: [{ type: 'text', text: err.message }] };
  throw err;
};

/**
 * The same tools on an SDK 1.x McpServer (the v1 entry) or an SDK 2.x one (the v2 entry): both take
 * raw zod shapes and call handlers with (args, extra); bulkheadCall() reads the grant from either.
 */
export function registerCrmTools<S>(server: S, store: CrmStore): S {
  const registrar = server as unknown as ToolRegistrar;
  registrar.registerTool(
    'query_crm',
    {
      description: 'Read CRM rows. path is <namespace>/<table>[/<id>], e.g. acme/contacts or acme/deals/2.',
      inputSchema: { path: z.string().min(1).max(200), region: z.string().optional() },
      annotations: { readOnlyHint: true },
    },
    async ({ path, region }: { path: string; region?: string }, extra) => {
      const call = bulkheadCall(extra);
      try {
        const rows = await store.query(call.credential.value, path);
        call.reportRecords(rows.length);
        return json({ path, region: region ?? null, rows });
      } catch (err) {
        return refused(err);
      }
    },
  );

  registrar.registerTool(
    'export_report',
    {
      description: `Export a whole table of your CRM (${TABLES.join(', ')}).`,
      inputSchema: { table: z.enum(TABLES) },
      annotations: { readOnlyHint: true },
    },
    async ({ table }: { table: (typeof TABLES)[number] }, extra) => {
      const call = bulkheadCall(extra);
      try {
        const rows = await store.exportTable(call.credential.value, table);
        // Bulkhead compares this with the tool's max_records after the call.
        call.reportRecords(rows.length);
        return json({ table, count: rows.length, rows });
      } catch (err) {
        return refused(err);
      }
    },
  );

  registrar.registerTool(
    'send_email',
    {
      description: 'Queue an email from your CRM mailbox. Needs an operator approval for each message.',
      inputSchema: { to: z.string().email(), subject: z.string().max(200), body: z.string().max(5000) },
    },
    async ({ to, subject, body }: { to: string; subject: string; body: string }, extra) => {
      const call = bulkheadCall(extra);
      try {
        const { queued } = await store.send(call.credential.value, { to, subject, body });
        return json({ queued: true, position: queued });
      } catch (err) {
        return refused(err);
      }
    },
  );
  return server;
}
