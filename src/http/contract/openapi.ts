import { z, type ZodType } from 'zod';
import { schemaValidatedOnce } from '../../policy/validate-once';
import { RESERVED_KEYS } from '../strict-json';
import { OPERATIONS, type ErrorShape, type Operation, type Response } from './operations';
import { denyBody, errorBody, oauthError } from './responses';

/**
 * The OpenAPI 3.1 document, generated from OPERATIONS and the zod schemas the routes validate with
 * (zod 4's own JSON Schema output: OpenAPI 3.1 schemas are JSON Schema 2020-12). Served at
 * /openapi.json and written to docs/openapi.json by scripts/contract-docs.sh.
 */

type JsonSchema = Record<string, unknown>;

/**
 * Request schemas describe what a client may send (zod's input side: defaults optional, coercions as
 * their input); response schemas what the broker sends. Two zod types have no JSON Schema of their own:
 * `z.undefined()` (a parameter that must be absent) becomes "nothing is valid", and a `z.custom`
 * object check is described by the `.meta()` next to it.
 */
export function jsonSchemaOf(schema: ZodType, io: 'input' | 'output'): JsonSchema {
  const generated = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === 'undefined') ctx.jsonSchema.not = {};
      // A policy leaf validated once per load (validate-once.ts) is documented as the schema it applies.
      const validated = schemaValidatedOnce(ctx.zodSchema);
      if (validated) Object.assign(ctx.jsonSchema, jsonSchemaOf(validated, io));
    },
  }) as JsonSchema;
  delete generated.$schema;
  return generated;
}

/**
 * What the strict JSON reader (strict-json.ts) takes anywhere in a body: integers within ±(2^53-1), no
 * reserved keys. Every body schema's open places (extra members, free-form arguments) are this, and
 * every number without bounds gets the safe-integer ones, so the document promises only what is read.
 */
const JSON_VALUE_REF = { $ref: '#/components/schemas/JsonValue' };
const SAFE = { minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER };
const JSON_VALUE = {
  description: 'any JSON value the strict reader accepts: integers within ±(2^53-1), no "__proto__"/"constructor"/"prototype" keys',
  anyOf: [
    { type: 'null' },
    { type: 'boolean' },
    { type: 'string' },
    { type: 'number', ...SAFE },
    { type: 'array', items: JSON_VALUE_REF },
    { type: 'object', propertyNames: { not: { enum: [...RESERVED_KEYS] } }, additionalProperties: JSON_VALUE_REF },
  ],
};

function strictBody(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strictBody);
  if (node === null || typeof node !== 'object') return node;
  const out: JsonSchema = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, key === 'properties' ? Object.fromEntries(Object.entries(value as JsonSchema).map(([k, v]) => [k, strictBody(v)])) : strictBody(value)]));
  const types = ([] as unknown[]).concat(out.type ?? []);
  if (types.includes('object') && out.additionalProperties === undefined) {
    out.additionalProperties = JSON_VALUE_REF;
    out.propertyNames = { not: { enum: [...RESERVED_KEYS] } };
  }
  if ((types.includes('number') || types.includes('integer')) && out.maximum === undefined) out.maximum = SAFE.maximum;
  if ((types.includes('number') || types.includes('integer')) && out.minimum === undefined && out.exclusiveMinimum === undefined) out.minimum = SAFE.minimum;
  return out;
}

const SECURITY_SCHEMES = {
  serverKey: {
    type: 'http',
    scheme: 'bearer',
    description: "an MCP server's key (policy `servers.<id>.key_sha256` holds its SHA-256); with mTLS on, a client certificate naming the server instead",
  },
  operatorToken: {
    type: 'http',
    scheme: 'bearer',
    description: "an operator's token (policy `operators.<id>.token_sha256`); with mTLS on, an operator client certificate instead",
  },
  clientBasic: {
    type: 'http',
    scheme: 'basic',
    description: "a tenant principal's client credentials (RFC 6749 §2.3.1), or client_id and client_secret in the body",
  },
  agentToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      'an access token from /v1/token (JWT, typ at+jwt, EdDSA). The agent presents it to a protected MCP server, which passes it to /v1/authorize and /v1/manifest in the `token` field; the broker itself takes no agent bearer.',
  },
} as const;

const SECURITY: Record<Operation['security'], Array<Record<string, string[]>>> = {
  public: [],
  server: [{ serverKey: [] }],
  operator: [{ operatorToken: [] }],
  // Client authentication is HTTP Basic or body parameters (or none, for a public client's code grant).
  client: [{ clientBasic: [] }, {}],
};

const RETRY_AFTER = { 'Retry-After': { description: 'seconds to wait before retrying', schema: { type: 'integer', minimum: 0 } } };

const GENERIC_DESCRIPTIONS: Record<number, string> = {
  400: 'malformed: the message names the first field at fault',
  401: 'authentication failed',
  403: 'refused by policy',
  404: 'not found (the message names what)',
  409: 'conflict with the current state',
  413: 'body larger than broker.http.body_limit',
  415: 'not JSON (or a form where one is taken), or not UTF-8',
  422: 'refused: the policy file does not validate (every issue listed)',
  429: 'over a quota, concurrency or budget limit',
  503: 'fail closed: upstream, audit or shared state unavailable; nothing was allowed or changed. Retry.',
};

/** The statuses an operation can answer besides its own responses, from how it is reached and shaped. */
function genericStatuses(op: Operation): number[] {
  const statuses = new Set<number>(op.also ?? []);
  const takesInput = op.body !== undefined || op.query !== undefined || op.params !== undefined;
  if (takesInput) statuses.add(400);
  if (op.body !== undefined) [413, 415].forEach((s) => statuses.add(s));
  if (op.security === 'server' || op.security === 'operator' || op.security === 'client') [401, 503].forEach((s) => statuses.add(s));
  if (op.errors === 'html') [400, 503].forEach((s) => statuses.add(s));
  return [...statuses].filter((status) => op.responses[status] === undefined).sort();
}

function errorSchema(shape: ErrorShape, status: number): ZodType | undefined {
  if (shape === 'deny') return denyBody(status);
  if (shape === 'oauth') return oauthError;
  if (shape === 'error') return errorBody(status);
  return undefined;
}

function responseObject(response: Response): JsonSchema {
  const headers = { ...(response.headers ? Object.fromEntries(Object.entries(response.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }])) : {}) };
  const out: JsonSchema = { description: response.description };
  if (Object.keys(headers).length) out.headers = headers;
  if (response.type === 'text/html' || response.type === 'text/plain') out.content = { [response.type]: { schema: { type: 'string' } } };
  else if (response.schema) out.content = { 'application/json': { schema: jsonSchemaOf(response.schema, 'output') } };
  return out;
}

function parametersOf(op: Operation): JsonSchema[] {
  const list: JsonSchema[] = [];
  for (const [where, object] of [['path', op.params], ['query', op.query]] as const) {
    if (!object) continue;
    for (const [name, field] of Object.entries(object.shape) as Array<[string, ZodType]>) {
      const required = where === 'path' || !field.safeParse(undefined).success;
      list.push({ name, in: where, required, schema: jsonSchemaOf(field, 'input') });
    }
  }
  return list;
}

function operationObject(op: Operation): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, response] of Object.entries(op.responses)) responses[status] = responseObject(response);
  for (const status of genericStatuses(op)) {
    const schema = errorSchema(op.errors, status);
    const response: Response = op.errors === 'html' ? { description: GENERIC_DESCRIPTIONS[status]!, type: 'text/html' } : { description: GENERIC_DESCRIPTIONS[status]!, ...(schema ? { schema } : {}) };
    responses[String(status)] = responseObject(response);
    if (status === 429 || (status === 503 && op.errors !== 'html')) (responses[String(status)] as { headers?: unknown }).headers = RETRY_AFTER;
  }
  const out: JsonSchema = { operationId: op.id, summary: op.summary, tags: [op.tag], security: SECURITY[op.security], responses };
  const parameters = parametersOf(op);
  if (parameters.length) out.parameters = parameters;
  if (op.body) {
    const schema = jsonSchemaOf(op.body, 'input');
    const content: Record<string, unknown> = { 'application/json': { schema: strictBody(schema) } };
    // A form is read by the form parser, not the strict JSON reader: only the grant's own rules apply.
    if (op.forms) content['application/x-www-form-urlencoded'] = { schema };
    // Required when an empty object would not do: no body at all reads as `{}`.
    out.requestBody = { required: !op.body.safeParse({}).success, content };
  }
  return out;
}

export function openApiDocument(version: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const op of OPERATIONS) (paths[op.path] ??= {})[op.method] = operationObject(op);
  return {
    openapi: '3.1.1',
    info: {
      title: 'Bulkhead',
      version,
      description:
        'Credential broker for multi-tenant MCP servers. Generated from the zod schemas the broker validates requests with (src/http/contract). Errors carry a typed reason (`error` or, on the authorize path, `reason`); 503 is fail closed and retryable. The operator console (/console) is a same-origin browser application behind its own session and is not part of this API.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    tags: [
      { name: 'health', description: 'liveness, readiness, metrics' },
      { name: 'contract', description: 'this document' },
      { name: 'tokens', description: 'OAuth 2.0: token endpoint, introspection, revocation, authorization code flow, keys' },
      { name: 'authorize', description: 'called by an MCP server around every tool execution' },
      { name: 'operator', description: 'kill switch, tenant status, approvals, policy reload, key rotation' },
      { name: 'audit', description: 'per-tenant hash-chained audit: search, verify, export, correlate' },
    ],
    paths,
    components: { schemas: { JsonValue: JSON_VALUE }, securitySchemes: SECURITY_SCHEMES },
  };
}
