/**
 * Structured logs: one JSON object per line, always with the request id when
 * there is one. Secrets never reach here: callers pass fields, not requests.
 *
 * @module
 */

/** Log severity. */
export type Level = "debug" | "info" | "warn" | "error";

/** Writes one log line. */
export type Logger = (level: Level, message: string, fields?: Record<string, unknown>) => void;

/** Logs JSON lines to the console (stderr for warnings and errors). */
export const consoleLogger: Logger = (level, message, fields = {}) => {
  const line = JSON.stringify({ at: new Date().toISOString(), level, message, ...fields });
  if (level === "warn" || level === "error") console.error(line);
  else console.log(line);
};
