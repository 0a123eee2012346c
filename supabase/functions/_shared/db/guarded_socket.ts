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
 * rejects what is in flight while its socket is still there; every write
 * after that (the rollback's, a query's) fails as an error of its own rather
 * than vanishing; and `close` reaches postgres.js `CLOSE_DELAY_MS` later,
 * with nothing left in flight to reject once its socket is null. The query fails as an outage (a 503 with
 * Retry-After) and the next one tries again. Found and checked by
 * tests/db_outage_test.ts, also in the 2.1.4 lane (docs/RELIABILITY.md).
 *
 * @module
 */
import net from "node:net";

/** How long after it closed postgres.js hears of it (see the module doc). */
const CLOSE_DELAY_MS = 50;
/** How long the writes that failing the last queries causes (rollbacks) get to fail in turn. */
const LAST_WRITES_MS = 10;

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
  // Why the connection is gone, once it is and the client did not end it.
  let lost: Error | undefined;
  // postgres.js's own 'error' listeners, called directly: the runtime's socket may have
  // dropped them once destroyed, and a query failed into no listener would never settle.
  const onError = new Set<(error: Error) => void>();
  let told = true; // until postgres.js's close() has run and stopped listening
  const tell = (error: Error) => told && onError.forEach((listener) => listener(error));
  const on = socket.on.bind(socket);
  socket.on = ((event: string, listener: (...args: unknown[]) => void) => {
    if (event === "error") onError.add(listener);
    return on(event, listener);
  }) as typeof socket.on;
  let opened = false;
  socket.once("connect", () => opened = true);
  const emit = socket.emit.bind(socket);
  socket.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event === "error") lost ??= args[0] as Error;
    if (event !== "close") return emit(event, ...args);
    // Nothing was ever sent on a connection that never opened (refused): nothing to fail.
    if (endedByClient || !opened) {
      setTimeout(() => emit("close", ...args), 0);
      return true;
    }
    if (!lost) tell(lost = _reset(SERVER_CLOSED));
    const reason = lost;
    setTimeout(() => {
      // Whatever was sent since fails now, while postgres.js's socket is still set; the
      // rollbacks that answers send fail through the write below a turn later.
      tell(reason);
      setTimeout(() => {
        told = false;
        // As a clean close: postgres.js rejects whatever still waits rather than leave it.
        emit("close", false);
      }, LAST_WRITES_MS);
    }, CLOSE_DELAY_MS);
    return true;
  }) as typeof socket.emit;
  const end = socket.end.bind(socket);
  socket.end = ((...args: Parameters<typeof socket.end>) => {
    endedByClient = true;
    return end(...args);
  }) as typeof socket.end;
  // A write to a connection that is gone fails as an error, never in silence.
  const write = socket.write.bind(socket);
  socket.write = ((...args: Parameters<typeof socket.write>) => {
    if (!lost || endedByClient) return write(...args);
    const error = lost;
    queueMicrotask(() => tell(error));
    return true;
  }) as typeof socket.write;
  socket.on("end", () => {
    if (endedByClient) return;
    socket.destroy(_reset(socket.bytesRead === 0 ? HANDSHAKE_DROPPED : SERVER_CLOSED));
  });
  return socket;
}

function _reset(reason: string): Error {
  return Object.assign(new Error(reason), { code: "ECONNRESET" });
}
