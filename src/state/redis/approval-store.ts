import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { MAX_LISTED_APPROVALS, type Approval, type ApprovalStatus, type ApprovalStore } from '../../approvals/approval-store';
import { sha256Hex } from '../../crypto/hash';
import type { Keyspace } from './keyspace';
import { luaScript } from './lua-script';

/**
 * Approvals shared by every replica: a call can ask on one replica, the operator approve on a second,
 * and the retried call consume it on a third. Same rules as the embedded store (memory-approval-store.ts):
 * bound to one exact call, pending → approved | denied, approved → used exactly once, random ids.
 *
 * Each approval is a hash; an "open" key per exact call (hash of tenant, session, tool, arguments hash)
 * points at its pending or approved approval. Every transition is one Lua script, so two replicas can
 * never both consume one approval. Approvals stay readable an hour after they expire, then Redis drops them.
 *
 * Sealed arguments live under their own key, which expires exactly when the approval does (PXAT) and
 * which DECIDE and FORGET delete: readable only while the approval is pending.
 *
 * Operators list a tenant's pending approvals from a per-tenant sorted set of ids (score: created_at).
 * REQUEST adds to it and DECIDE removes from it in the same scripts that change the status, so the index
 * never lags the approvals; LIST_PENDING drops the entries that expired (or whose hash Redis dropped).
 */
const RETAIN_AFTER_EXPIRY_MS = 60 * 60_000;

const REQUEST = luaScript(`
local id = redis.call('GET', KEYS[1])
if id then
  local key = ARGV[1] .. id
  local s = redis.call('HMGET', key, 'status', 'expires_at')
  if (s[1] == 'pending' or s[1] == 'approved') and tonumber(s[2]) > tonumber(ARGV[2]) then
    return redis.call('HGETALL', key)
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('approval id generator returned a duplicate') end
if ARGV[11] ~= '' then redis.call('SET', KEYS[4], ARGV[11], 'PXAT', ARGV[9]) end
redis.call('HSET', KEYS[2], 'id', ARGV[3], 'tenant', ARGV[4], 'principal', ARGV[5], 'session', ARGV[6], 'tool', ARGV[7],
  'arguments_mac', ARGV[8], 'status', 'pending', 'created_at', ARGV[2], 'expires_at', ARGV[9], 'open_key', KEYS[1], 'pending_key', KEYS[3])
redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[9]) + tonumber(ARGV[10]))
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
-- The index lives as long as its longest-lived entry. Relative TTLs, not PEXPIRE ... GT, which needs Redis 7.
local live = math.max(1, tonumber(ARGV[9]) - tonumber(ARGV[2]))
if redis.call('PTTL', KEYS[3]) < live then redis.call('PEXPIRE', KEYS[3], live) end
return redis.call('HGETALL', KEYS[2])
`);

const DECIDE = luaScript(`
local s = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'open_key', 'id', 'pending_key')
if s[1] ~= 'pending' or tonumber(s[2]) <= tonumber(ARGV[3]) then return false end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'decided_by', ARGV[2])
redis.call('DEL', KEYS[2])
if s[5] then redis.call('ZREM', s[5], s[4]) end
if ARGV[1] == 'denied' and redis.call('GET', s[3]) == s[4] then redis.call('DEL', s[3]) end
return redis.call('HGETALL', KEYS[1])
`);

const CONSUME = luaScript(`
local id = redis.call('GET', KEYS[1])
if not id then return false end
local key = ARGV[1] .. id
local s = redis.call('HMGET', key, 'status', 'expires_at')
if s[1] ~= 'approved' or tonumber(s[2]) <= tonumber(ARGV[2]) then return false end
redis.call('HSET', key, 'status', 'used')
redis.call('DEL', KEYS[1])
return redis.call('HGETALL', key)
`);

// Walks the index oldest first, in pages, dropping entries that are no longer pending and unexpired (each
// is dropped once, so the walk stays short); the tenant check guards against an index entry ever naming
// another tenant's approval.
const LIST_PENDING = luaScript(`
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local out = {}
local start = 0
while #out < limit do
  local ids = redis.call('ZRANGE', KEYS[1], start, start + 99)
  if #ids == 0 then break end
  local stale = {}
  for _, id in ipairs(ids) do
    local key = ARGV[1] .. id
    local s = redis.call('HMGET', key, 'status', 'expires_at', 'tenant')
    if s[1] == 'pending' and s[3] == ARGV[4] and tonumber(s[2]) > now then
      if #out < limit then out[#out + 1] = redis.call('HGETALL', key) end
    else
      stale[#stale + 1] = id
    end
  end
  if #stale > 0 then redis.call('ZREM', KEYS[1], unpack(stale)) end
  start = start + #ids - #stale
end
return out
`);

/** Deletes one approval if it is the tenant's (KEYS[1]: its hash; ARGV[1]: the tenant), with its open key. */
const FORGET = luaScript(`
local s = redis.call('HMGET', KEYS[1], 'tenant', 'open_key', 'id')
if s[1] ~= ARGV[1] then return 0 end
if s[2] and redis.call('GET', s[2]) == s[3] then redis.call('DEL', s[2]) end
if s[3] then redis.call('DEL', ARGV[2] .. s[3]) end
redis.call('DEL', KEYS[1])
return 1
`);

export function createRedisApprovalStore(options: { redis: Redis; keyspace: Keyspace; random?: () => string }): ApprovalStore {
  const { redis, keyspace: ks } = options;
  const newId = options.random ?? randomUUID;
  const openKey = (tenant: string, session: string, tool: string, sha: string) => ks.approvalOpen(sha256Hex(JSON.stringify([tenant, session, tool, sha])));

  return {
    async request(input, now) {
      const id = newId();
      const reply = await REQUEST(
        redis,
        [openKey(input.tenant, input.session, input.tool, input.arguments_mac), ks.approval(id), ks.approvalsPending(input.tenant), ks.approvalArguments(id)],
        [ks.approvalPrefix, Math.trunc(now), id, input.tenant, input.principal, input.session, input.tool, input.arguments_mac, Math.trunc(input.expires_at), RETAIN_AFTER_EXPIRY_MS, input.sealed_arguments ?? ''],
      );
      return toApproval(reply)!;
    },

    async get(id) {
      return toApproval(await redis.hgetall(ks.approval(id)));
    },

    async sealedArguments(id, now) {
      const approval = toApproval(await redis.hgetall(ks.approval(id)));
      if (!approval || approval.status !== 'pending' || approval.expires_at <= now) return null;
      return redis.get(ks.approvalArguments(id));
    },

    async decide(id, decision, operator, now) {
      return toApproval(await DECIDE(redis, [ks.approval(id), ks.approvalArguments(id)], [decision, operator, Math.trunc(now)]));
    },

    async consume(tenant, session, tool, argumentsMac, now) {
      return toApproval(await CONSUME(redis, [openKey(tenant, session, tool, argumentsMac)], [ks.approvalPrefix, Math.trunc(now)]));
    },

    async listPending(tenant, now) {
      const replies = (await LIST_PENDING(redis, [ks.approvalsPending(tenant)], [ks.approvalPrefix, Math.trunc(now), MAX_LISTED_APPROVALS, tenant])) as unknown[];
      return replies.map(toApproval).filter((a): a is Approval => a !== null);
    },

    async listTenant(tenant) {
      const found: Approval[] = [];
      for (let cursor = '0'; ; ) {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${ks.approvalPrefix}*`, 'COUNT', 500);
        for (const key of keys) {
          const approval = toApproval(await redis.hgetall(key));
          if (approval?.tenant === tenant) found.push(approval);
        }
        if ((cursor = next) === '0') break;
      }
      return found.sort((x, y) => x.created_at - y.created_at);
    },

    async forgetTenant(tenant) {
      // Approvals are keyed by random id, so every one is visited; each check and delete is one script.
      for (let cursor = '0'; ; ) {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${ks.approvalPrefix}*`, 'COUNT', 500);
        for (const key of keys) await FORGET(redis, [key], [tenant, ks.approvalArgumentsPrefix]);
        if ((cursor = next) === '0') break;
      }
      await redis.unlink(ks.approvalsPending(tenant));
    },
  };
}

/** From HGETALL (an object) or a script's flat [field, value, …] list. */
function toApproval(reply: unknown): Approval | null {
  let fields: Record<string, string>;
  if (Array.isArray(reply)) {
    fields = {};
    for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1]);
  } else if (reply !== null && typeof reply === 'object') {
    fields = reply as Record<string, string>;
  } else {
    return null;
  }
  if (!fields.id) return null;
  return {
    id: fields.id,
    tenant: fields.tenant!,
    principal: fields.principal!,
    session: fields.session!,
    tool: fields.tool!,
    arguments_mac: fields.arguments_mac!,
    status: fields.status as ApprovalStatus,
    created_at: Number(fields.created_at),
    expires_at: Number(fields.expires_at),
    ...(fields.decided_by ? { decided_by: fields.decided_by } : {}),
  };
}
