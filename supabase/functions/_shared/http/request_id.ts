/**
 * The correlation id of a request. Behind Kong, Kong's own request id
 * (`X-Kong-Request-Id`, 32 hex digits Kong generates and overwrites on every
 * proxied request, the `kong_request_id` of its access log and the
 * `request_id` of its error bodies), so one id runs from Kong's log to
 * Herald's. Without Kong: the caller's `x-request-id` when it is sane, else
 * the trace id of a W3C `traceparent`, else a fresh UUID. Every id is
 * bounded and made of safe characters.
 *
 * @module
 */

const KONG_ID = /^[0-9a-f]{32}$/;
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Picks the correlation id for a request. */
export function requestIdOf(
  headers: Headers,
  randomUUID: () => string = crypto.randomUUID.bind(crypto),
): string {
  const kong = headers.get("x-kong-request-id");
  if (kong && KONG_ID.test(kong)) return kong;
  const given = headers.get("x-request-id");
  if (given && SANE_ID.test(given)) return given;
  const trace = headers.get("traceparent")?.match(TRACEPARENT)?.[1];
  if (trace && !/^0+$/.test(trace)) return trace;
  return randomUUID();
}
