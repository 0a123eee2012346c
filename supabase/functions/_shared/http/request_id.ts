/**
 * The correlation id of a request: the caller's `x-request-id` when it is
 * sane, else the trace id of a W3C `traceparent`, else a fresh UUID.
 *
 * @module
 */

const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Picks the correlation id for a request. */
export function requestIdOf(
  headers: Headers,
  randomUUID: () => string = crypto.randomUUID.bind(crypto),
): string {
  const given = headers.get("x-request-id");
  if (given && SANE_ID.test(given)) return given;
  const trace = headers.get("traceparent")?.match(TRACEPARENT)?.[1];
  if (trace && !/^0+$/.test(trace)) return trace;
  return randomUUID();
}
