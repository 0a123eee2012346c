/**
 * What a Postgres refusal means to a caller: the one SQLSTATE → problem table.
 *
 * Routes name the codes they expect from the statement they ran and may say
 * more precisely what was refused (which record, which field); the status and
 * problem type always come from here. The HTTP shell maps classes 22 and 23
 * (data and integrity refusals) for every route, so a gap in validation is a
 * 422, never a 500; other codes are mapped only where a route expects them,
 * so a bug (a missing grant, a function that found nothing) is not disguised
 * as the caller's fault.
 *
 * @module
 */
import { Problem } from "../http/problem.ts";

/** The SQLSTATEs Herald's statements raise on purpose, by their Postgres names. */
export const SqlState = {
  /** A policy, a grant or one of our functions said no. */
  insufficient_privilege: "42501",
  /** One of our functions found nothing of the caller's (`raise ... using errcode = 'P0002'`). */
  no_data_found: "P0002",
  /** A reference to a user or record that does not exist. */
  foreign_key_violation: "23503",
  /** A CHECK refused a value (a time zone Postgres does not know). */
  check_violation: "23514",
  /** One of our functions or triggers refused an argument (a webhook URL, a target). */
  invalid_parameter_value: "22023",
} as const;

type Code = (typeof SqlState)[keyof typeof SqlState];

const REFUSALS: Record<Code, { status: number; type: string; detail: string }> = {
  "42501": {
    status: 403,
    type: "not-allowed",
    detail: "This is not yours to do",
  },
  "P0002": {
    status: 404,
    type: "not-found",
    detail: "Nothing of yours by that id",
  },
  "23503": {
    status: 422,
    type: "unknown-reference",
    detail: "The request names a user or record that does not exist (a deleted account's token?).",
  },
  "23514": { status: 422, type: "validation", detail: "A value was refused" },
  "22023": { status: 422, type: "validation", detail: "A value was refused" },
};

/** How a route words one refusal; `detail` may read the database's message. */
export interface Wording {
  detail?: string | ((message: string) => string);
  /** The request field at fault, reported in `errors`; may read the database's message. */
  field?: string | ((message: string) => string | undefined);
  /** The field's message; the detail when absent. */
  message?: string | ((message: string) => string);
}

/** The SQLSTATE of a Postgres error, if `error` is one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && error.name === "PostgresError" &&
      typeof code === "string"
    ? code
    : undefined;
}

/**
 * A `.catch` handler: the codes in `expected` become their problems, worded
 * by the route; anything else is rethrown unchanged.
 *
 * @example
 * ```ts
 * await asCaller(sql, caller, (tx) => tx`select herald.cancel_notification(${id})`)
 *   .catch(refused({ no_data_found: { detail: `You sent no notification ${id}.` } }));
 * ```
 */
export function refused(
  expected: Partial<Record<keyof typeof SqlState, Wording>>,
): (error: unknown) => never {
  return (error) => {
    const code = sqlState(error);
    const entry = Object.entries(expected).find(([name]) =>
      SqlState[name as keyof typeof SqlState] === code
    );
    if (!entry) throw error;
    throw _problem(code as Code, (error as Error).message, entry[1]);
  };
}

/**
 * The problem for a data or integrity refusal (classes 22 and 23) no route
 * expected: the HTTP shell's last line of input checking.
 */
export function unexpectedRefusal(error: unknown): Problem | undefined {
  const code = sqlState(error);
  if (!code || !(code.startsWith("22") || code.startsWith("23"))) {
    return undefined;
  }
  const message = (error as Error).message;
  if (code in REFUSALS) return _problem(code as Code, message, {});
  return new Problem(422, "validation", `A value was refused: ${message}.`);
}

function _problem(code: Code, message: string, wording: Wording): Problem {
  const { status, type, detail } = REFUSALS[code];
  const said = typeof wording.detail === "function" ? wording.detail(message) : wording.detail ??
    (status === 422 && type === "validation" ? `${detail}: ${message}.` : detail);
  const fieldMessage = typeof wording.message === "function"
    ? wording.message(message)
    : wording.message ?? said;
  const field = typeof wording.field === "function" ? wording.field(message) : wording.field;
  const errors = field ? [{ field, message: fieldMessage }] : [];
  return new Problem(status, type, said, errors);
}
