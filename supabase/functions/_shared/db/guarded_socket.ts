/**
 * The TCP socket Herald's postgres.js pool connects through (postgres.js's
 * `socket` option). Two defects of postgres.js 3.4.9 are kept out here:
 *
 * - A server that accepts TCP and closes before answering the startup
 *   message (a proxy or pooler whose Postgres is down) closes without an
 *   error, and postgres.js reconnects at once, forever, while the query that
 *   opened the connection never settles: a request would hang and an
 *   isolate spin.
 * - A server that closes a connection in a transaction without a word (an
 *   immediate shutdown, a crash, a cut) makes `closed()` set its socket to
 *   null and only then reject the transaction's query; `sql.begin` answers
 *   that with a `rollback` on the same connection, whose write, scheduled
 *   with `setImmediate`, dereferences the null socket and ends the process
 *   (`TypeError: Cannot read properties of null (reading 'write')` in
 *   `nextWrite`, uncaught; porsager/postgres#1208, open).
 *
 * So a close the client did not ask for (no Terminate message sent) becomes
 * an `ECONNRESET` error first, as a refused connection is one: postgres.js
 * rejects what is in flight while its socket is still there, the rollback's
 * write fails as an error of its own, and `close` reaches postgres.js
 * `CLOSE_DELAY_MS` later. The query fails as an outage (a 503 with
 * Retry-After) and the next one tries again. Found and checked by
 * tests/db_outage_test.ts, also in the 2.1.4 lane (docs/RELIABILITY.md).
 *
 * @module
 */
import net from "node:net";

/** How long after it closed postgres.js hears of it (see the module doc). */
const CLOSE_DELAY_MS = 50;

/** Why a socket closed before the server said anything. */
const HANDSHAKE_DROPPED = "the server closed the connection before answering the startup message";
/** Why a socket closed that the client did not end. */
const SERVER_CLOSED = "the server closed the connection";

/**
 * Connects to `host:port` and returns at once (writes wait for the
 * connection; postgres.js's `connect_timeout` bounds it), guarded as the
 * module says. postgres.js names the TLS server after `socket.host`, as for
 * its own sockets; only the first host of a multi-host URL is used.
 *
 * @example
 * ```ts
 * postgres(url, { socket: ({ host, port }) => guardedSocket(host[0], port[0]) });
 * ```
 */
export function guardedSocket(host: string, port: number): net.Socket {
  const socket = net.connect({ host, port });
  Object.assign(socket, { host, port });
  // postgres.js ends a connection only with a Terminate message and `end()`.
  let endedByClient = false;
  const emit = socket.emit.bind(socket);
  socket.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event !== "close") return emit(event, ...args);
    setTimeout(() => emit("close", ...args), endedByClient ? 0 : CLOSE_DELAY_MS);
    return true;
  }) as typeof socket.emit;
  const end = socket.end.bind(socket);
  socket.end = ((...args: Parameters<typeof socket.end>) => {
    endedByClient = true;
    return end(...args);
  }) as typeof socket.end;
  socket.on("end", () => {
    if (endedByClient) return;
    const reason = socket.bytesRead === 0 ? HANDSHAKE_DROPPED : SERVER_CLOSED;
    socket.destroy(Object.assign(new Error(reason), { code: "ECONNRESET" }));
  });
  return socket;
}
