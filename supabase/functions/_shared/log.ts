/**
 * Structured logs: one JSON object per line, always with the request id when
 * there is one. Secrets never reach here: callers pass fields, not requests.
 *
 * Lines written deep inside a request or a dispatch round (a breaker opening,
 * Redis going away) carry that request's or round's id without being handed
 * it: {@linkcode withLogContext} keeps it for everything the work awaits.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";

const context = new AsyncLocalStorage<Record<string, string>>();

/**
 * Runs `work` with `fields` (`request_id`, `round_id`) on every line logged
 * while it runs, including from callbacks it triggers.
 */
export function withLogContext<T>(fields: Record<string, string>, work: () => T): T {
  return context.run({ ...context.getStore(), ...fields }, work);
}

/** The fields {@linkcode withLogContext} set for the work running now. */
export function logContext(): Record<string, string> {
  return context.getStore() ?? {};
}

/** Log severity. */
export type Level = "debug" | "info" | "warn" | "error";

/** Writes one log line. */
export type Logger = (level: Level, message: string, fields?: Record<string, unknown>) => void;

/** Logs JSON lines to the console (stderr for warnings and errors). */
export const consoleLogger: Logger = (level, message, fields = {}) => {
  const line = JSON.stringify({
    at: new Date().toISOString(),
    level,
    message,
    ...logContext(),
    ...fields,
  });
  if (level === "warn" || level === "error") console.error(line);
  else console.log(line);
};
