/**
 * The TCP socket Herald's postgres.js pool connects through (postgres.js's
 * `socket` option). A server that accepts TCP and closes before answering
 * the startup message (a proxy or pooler whose Postgres is down) closes
 * without an error, and postgres.js 3.4.9 then reconnects at once, forever,
 * while the query that opened the connection never settles: a request would
 * hang and an isolate spin. Here such a close is an `ECONNRESET` error, as a
 * refused connection is one, so that query fails as an outage (a 503 with
 * Retry-After) and the next query tries again.
 *
 * Under Deno 2.1.4 (the edge runtime's), postgres.js could also end the
 * isolate when a connection was cut: a write it had scheduled with
 * `setImmediate` still ran after `closed()` had cancelled it and set its
 * socket to null (`TypeError: Cannot read properties of null (reading
 * 'write')` in `nextWrite`, uncaught). Here the socket emits `close` on a
 * later timer turn than the one that closed it; postgres.js's cancel then
 * holds. Found and checked by tests/db_outage_test.ts in the 2.1.4 lane
 * (docs/RELIABILITY.md).
 *
 * @module
 */
import net from "node:net";

/** Why a socket closed before the server said anything. */
const HANDSHAKE_DROPPED = "the server closed the connection before answering the startup message";

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
  const emit = socket.emit.bind(socket);
  socket.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event !== "close") return emit(event, ...args);
    setTimeout(() => emit("close", ...args), 0);
    return true;
  }) as typeof socket.emit;
  socket.on("end", () => {
    if (socket.bytesRead === 0) {
      socket.destroy(Object.assign(new Error(HANDSHAKE_DROPPED), { code: "ECONNRESET" }));
    }
  });
  return socket;
}
