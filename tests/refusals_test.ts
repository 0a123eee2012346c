/**
 * The one SQLSTATE → problem table: what each refusal becomes when a route
 * expects it, and what the HTTP shell makes of one no route expected.
 */
import assert from "node:assert/strict";
import { refused, unexpectedRefusal } from "../supabase/functions/_shared/db/refusals.ts";
import { Problem } from "../supabase/functions/_shared/http/problem.ts";

function pgError(code: string, message = "refused") {
  return Object.assign(new Error(message), { name: "PostgresError", code });
}

function thrown(handler: (error: unknown) => never, error: unknown): unknown {
  try {
    handler(error);
  } catch (caught) {
    return caught;
  }
  assert.fail("the handler returned");
}

Deno.test("refused(): each expected SQLSTATE becomes its status and type, worded by the route", () => {
  const cases: [string, keyof Parameters<typeof refused>[0], number, string][] = [
    ["42501", "insufficient_privilege", 403, "not-allowed"],
    ["P0002", "no_data_found", 404, "not-found"],
    ["23503", "foreign_key_violation", 422, "unknown-reference"],
    ["23514", "check_violation", 422, "validation"],
    ["22023", "invalid_parameter_value", 422, "validation"],
  ];
  for (const [code, name, status, type] of cases) {
    const problem = thrown(refused({ [name]: { detail: "said by the route" } }), pgError(code));
    assert.ok(problem instanceof Problem, code);
    assert.deepEqual([problem.status, problem.type, problem.detail], [
      status,
      type,
      "said by the route",
    ]);
  }
});

Deno.test("refused(): the field at fault and the database's message reach the problem", () => {
  const problem = thrown(
    refused({
      invalid_parameter_value: {
        detail: (message) => `Invalid: ${message}.`,
        field: "url",
        message: (message) => message.toUpperCase(),
      },
    }),
    pgError("22023", "no private hosts"),
  ) as Problem;
  assert.equal(problem.detail, "Invalid: no private hosts.");
  assert.deepEqual(problem.errors, [{ field: "url", message: "NO PRIVATE HOSTS" }]);
});

Deno.test("refused(): a code the route did not name, or an error not from Postgres, is rethrown as it was", () => {
  const handler = refused({ no_data_found: { detail: "gone" } });
  for (const error of [pgError("42501"), pgError("40001"), new Error("P0002"), { code: "P0002" }]) {
    assert.equal(thrown(handler, error), error);
  }
});

Deno.test("unexpectedRefusal(): classes 22 and 23 are the request's fault (422); nothing else is", () => {
  assert.equal(unexpectedRefusal(pgError("23503"))?.type, "unknown-reference");
  const bad = unexpectedRefusal(pgError("22P02", "invalid input syntax for type uuid"));
  assert.deepEqual(
    [bad?.status, bad?.type, bad?.detail],
    [422, "validation", "A value was refused: invalid input syntax for type uuid."],
  );
  assert.equal(unexpectedRefusal(pgError("23514", "check"))?.detail, "A value was refused: check.");
  for (const code of ["42501", "P0002", "40001", "57014"]) {
    assert.equal(unexpectedRefusal(pgError(code)), undefined, code);
  }
  assert.equal(unexpectedRefusal(Object.assign(new Error("x"), { code: "23503" })), undefined);
});
