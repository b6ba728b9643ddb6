import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock';

/**
 * Server-side console sessions. The browser holds only a random 256-bit id (in an HttpOnly cookie);
 * the operator token it signed in with never leaves the sign-in request. The store keeps the SHA-256
 * of the id, so a heap dump or a log of this map cannot be replayed as a cookie, and each session's
 * CSRF token (the synchronizer pattern: the page reads it once and sends it on every state change).
 *
 * A session is short-lived twice over: it ends `idleMs` after its last use and `lifetimeMs` after
 * sign-in, whichever comes first. It also remembers how the operator proved who they were, so the
 * guard can end it the moment that proof stops being valid (a policy reload that removes the operator
 * or changes their token).
 */
export interface ConsoleSession {
  operator: string;
  /** `token:<sha256 of the operator token>` or `certificate`: re-checked against the live policy on every request. */
  proof: string;
  csrf: string;
  createdAt: number;
  expiresAt: number;
  lastSeen: number;
}

export interface ConsoleSessionOptions {
  clock: Clock;
  /** Default 15 minutes. */
  idleMs?: number;
  /** Default 60 minutes. */
  lifetimeMs?: number;
  /** Oldest sessions are dropped beyond this many (default 1000): sign-ins cannot grow memory without bound. */
  maxSessions?: number;
}

export interface ConsoleSessions {
  create(operator: string, proof: string): { id: string; session: ConsoleSession };
  /** The live session for a cookie value, its idle timer renewed; null when unknown or expired. */
  touch(id: string | undefined): ConsoleSession | null;
  end(id: string | undefined): void;
  /** Constant-time check of a presented CSRF token against the session's. */
  csrfMatches(session: ConsoleSession, presented: string | undefined): boolean;
  readonly size: number;
}

const ID_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export function createConsoleSessions(options: ConsoleSessionOptions): ConsoleSessions {
  const idleMs = options.idleMs ?? 15 * 60_000;
  const lifetimeMs = options.lifetimeMs ?? 60 * 60_000;
  const maxSessions = options.maxSessions ?? 1000;
  const sessions = new Map<string, ConsoleSession>();
  const keyOf = (id: string) => createHash('sha256').update(id, 'utf8').digest('hex');

  function expired(session: ConsoleSession, now: number): boolean {
    return now >= session.expiresAt || now - session.lastSeen >= idleMs;
  }

  return {
    create(operator, proof) {
      const now = options.clock.now();
      for (const [key, s] of sessions) if (expired(s, now)) sessions.delete(key);
      // Map iteration is insertion order: the first entries are the oldest sign-ins.
      while (sessions.size >= maxSessions) sessions.delete(sessions.keys().next().value!);
      const id = randomBytes(32).toString('base64url');
      const session: ConsoleSession = { operator, proof, csrf: randomBytes(32).toString('base64url'), createdAt: now, expiresAt: now + lifetimeMs, lastSeen: now };
      sessions.set(keyOf(id), session);
      return { id, session };
    },
    touch(id) {
      if (!id || !ID_SHAPE.test(id)) return null;
      const key = keyOf(id);
      const session = sessions.get(key);
      if (!session) return null;
      const now = options.clock.now();
      if (expired(session, now)) {
        sessions.delete(key);
        return null;
      }
      session.lastSeen = now;
      return session;
    },
    end(id) {
      if (id && ID_SHAPE.test(id)) sessions.delete(keyOf(id));
    },
    csrfMatches(session, presented) {
      if (typeof presented !== 'string') return false;
      const a = Buffer.from(presented, 'utf8');
      const b = Buffer.from(session.csrf, 'utf8');
      return a.length === b.length && timingSafeEqual(a, b);
    },
    get size() {
      return sessions.size;
    },
  };
}
