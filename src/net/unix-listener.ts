import { chmodSync, lstatSync, unlinkSync, type Stats } from 'node:fs';
import { createConnection, type Server } from 'node:net';
import { isAbsolute } from 'node:path';

/**
 * A unix-socket listener for the sidecar case (the broker beside one MCP server, sharing a socket
 * volume). The socket file's mode is the access control of the transport: 0600 by default, so only the
 * broker's own user can connect. Everyone who connects still authenticates as over TCP — a server key
 * for /v1/authorize, an operator token for the operator API; being local is never a credential.
 *
 * - The socket is created under a umask of 0177, so it is never wider than 0600 even for the instant
 *   between bind and chmod; a wider `mode` (0660 for a shared group) is applied after.
 * - An existing path is refused unless it is a stale socket (a socket nobody answers on, left by a
 *   crashed broker), which is removed. A regular file, a directory, a symlink or a live socket is never
 *   touched.
 * - `close` removes the socket file if it is still the one this listener created.
 */

export const DEFAULT_SOCKET_MODE = 0o600;

export class SocketPathError extends Error {}

export async function listenOnSocket(server: Server, path: string, mode = DEFAULT_SOCKET_MODE): Promise<{ close: () => void }> {
  if (!isAbsolute(path)) throw new SocketPathError(`${path}: the socket path must be absolute`);
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new SocketPathError(`socket mode must be an octal permission (0600, 0660), got ${String(mode)}`);
  await removeStaleSocket(path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // listen() binds synchronously in the main thread, so the umask covers exactly this socket's creation.
    const previous = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
  chmodSync(path, mode);
  const created = lstatSync(path);
  return {
    close() {
      // Node removes the socket file when the server closes; this covers a server that never closed it.
      const now = statOrNull(path);
      if (now && now.isSocket() && now.ino === created.ino && now.dev === created.dev) unlinkSync(path);
    },
  };
}

async function removeStaleSocket(path: string): Promise<void> {
  const existing = statOrNull(path);
  if (!existing) return;
  if (!existing.isSocket()) throw new SocketPathError(`${path} exists and is not a socket; refusing to replace it`);
  if (await answers(path)) throw new SocketPathError(`${path}: another process is listening on this socket`);
  unlinkSync(path);
}

/** Whether something accepts connections on the socket (ECONNREFUSED: a stale file, nobody bound to it). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') resolve(false);
      else reject(new SocketPathError(`${path}: cannot check whether the socket is in use (${err.code ?? err.message})`));
    });
  });
}

function statOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
