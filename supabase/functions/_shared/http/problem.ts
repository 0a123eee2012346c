/**
 * RFC 9457 problem details: the one shape every Herald error takes on the wire.
 *
 * @module
 */

/** One field at fault, as a JSON-pointer-ish dotted path. */
export interface FieldError {
  field: string;
  message: string;
}

/** An error the HTTP boundary turns into `application/problem+json`. */
export class Problem extends Error {
  /**
   * @param status HTTP status
   * @param type stable short slug, published as `https://herald.dev/problems/<type>`
   * @param detail human-readable explanation for this occurrence
   * @param errors fields at fault, if any
   * @param headers extra response headers (e.g. `Retry-After`)
   */
  constructor(
    readonly status: number,
    readonly type: string,
    readonly detail: string,
    readonly errors: FieldError[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = "Problem";
  }
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** Renders a problem as a response carrying the request's correlation id. */
export function problemResponse(problem: Problem, requestId: string): Response {
  const body = {
    type: `https://herald.dev/problems/${problem.type}`,
    title: TITLES[problem.status] ?? "Error",
    status: problem.status,
    detail: problem.detail,
    request_id: requestId,
    ...(problem.errors.length ? { errors: problem.errors } : {}),
  };
  return new Response(JSON.stringify(body), {
    status: problem.status,
    headers: {
      "content-type": "application/problem+json",
      "x-request-id": requestId,
      ...problem.headers,
    },
  });
}
