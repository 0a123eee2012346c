/**
 * Telling a database that cannot serve (down, restarting, out of
 * connections, a statement past its timeout) from every other error: the
 * first is a 503 to retry, never a 500.
 *
 * @module
 */

/** postgres.js's own codes for a connection that failed or broke. */
const CONNECTION_CODES = new Set([
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  // A write to a socket the runtime already closed (Node's and Deno's stream errors).
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
]);

/**
 * Why `error` means the database could not serve the request (it is down,
 * restarting, out of connections, or a statement ran past its timeout), or
 * undefined when it is some other error. Such requests are the server's
 * trouble but not a bug: a 503 the caller may retry.
 */
export function databaseUnavailable(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") return undefined;
  if (CONNECTION_CODES.has(code)) return `connection: ${code}`;
  if ((error as Error).name !== "PostgresError") return undefined;
  // 08 connection exception, 57P0x shutdown or recovery, 53300 too many connections.
  if (code.startsWith("08") || /^57P0\d$/.test(code) || code === "53300") {
    return `SQLSTATE ${code}`;
  }
  if (code === "57014") return "a statement ran past its timeout";
  return undefined;
}
