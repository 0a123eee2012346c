/**
 * What every stand-in shares: it records what it received and can be told,
 * over HTTP on its own port, to add latency or to answer the next requests
 * with scripted responses.
 *
 * Control API (on each stand-in's port):
 * - `GET /_control/requests[?after=SEQ]` → `{ total, max_in_flight, requests: [{ seq, at, method,
 *   path, headers, body, raw, status }] }` (`max_in_flight`: the most requests it was answering
 *   at once; `seq` numbers requests from 1 since the last reset; `after` keeps only later ones;
 *   `status` is what the stand-in answered, once it has)
 * - `DELETE /_control/requests` clears the record
 * - `POST /_control/behaviour` `{ latency_ms?, responses?: [...], repeat_last? }`: `responses`
 *   is consumed one per request (then normal service resumes unless `repeat_last`); each is
 *   `{ status, body?, headers? }` or a stand-in's own shorthand (e.g. `{ fcm_error }`)
 * - `POST /_control/reset` restores defaults and clears everything
 *
 * @module
 */

/** One received request. */
export interface Recorded {
  /** 1, 2, … since the last reset. */
  seq: number;
  at: string;
  method: string;
  path: string;
  /** The query string (`?slug=…`), when there was one. */
  query?: string;
  headers: Record<string, string>;
  /** Parsed JSON when the body was JSON, else the raw text. */
  body: unknown;
  /** The body exactly as it arrived (what a signature covers). */
  raw: string;
  /** The status the stand-in answered (absent while it is still answering). */
  status?: number;
}

/** A scripted answer: a plain response, or a stand-in's shorthand object. */
export type Scripted = Record<string, unknown>;

/** The request a stand-in handles, with its body already read. */
export interface FakeRequest {
  request: Request;
  url: URL;
  text: string;
  /** Parsed JSON, or undefined when the body is not JSON. */
  json: unknown;
}

/** How a stand-in answers a request; `scripted` is the next queued answer, if any. */
export type FakeHandler = (
  req: FakeRequest,
  scripted: Scripted | undefined,
) => Response | Promise<Response>;

/** Enough for a chaos scenario's 10,000 pushes and their repeats: a count over a cut log lies. Kept: 30,000 to 37,500. */
const MAX_RECORDED = 30_000;

/** Behaviour and record of one stand-in. */
export class FakeControl {
  latencyMs = 0;
  queue: Scripted[] = [];
  repeatLast = false;
  total = 0;
  requests: Recorded[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Extra reset work of a stand-in (e.g. per-token errors). */
  onReset: () => void = () => {};
  /** A stand-in's own control routes, keyed `"POST /_control/tokens"`. */
  routes = new Map<string, (request: Request) => Promise<Response>>();

  record(entry: Omit<Recorded, "seq">): Recorded {
    const recorded = { seq: ++this.total, ...entry };
    this.requests.push(recorded);
    // Trimmed in chunks: a splice per request past the bound costs the stand-in O(n) each.
    if (this.requests.length > MAX_RECORDED * 1.25) {
      this.requests.splice(0, this.requests.length - MAX_RECORDED);
    }
    return recorded;
  }

  next(): Scripted | undefined {
    if (this.queue.length > 1 || (this.queue.length === 1 && !this.repeatLast)) {
      return this.queue.shift();
    }
    return this.queue[0];
  }

  reset() {
    this.latencyMs = 0;
    this.queue = [];
    this.repeatLast = false;
    this.total = 0;
    this.requests = [];
    this.maxInFlight = this.inFlight;
    this.onReset();
  }

  /** Answers `/_control/*`; undefined for any other path. */
  async handle(request: Request, url: URL): Promise<Response | undefined> {
    if (!url.pathname.startsWith("/_control/")) return undefined;
    const route = `${request.method} ${url.pathname}`;
    const own = this.routes.get(route);
    if (own) return await own(request);
    if (route === "GET /_control/requests") {
      const after = Number(url.searchParams.get("after") ?? 0);
      return Response.json({
        total: this.total,
        max_in_flight: this.maxInFlight,
        requests: after > 0 ? this.requests.filter((r) => r.seq > after) : this.requests,
      });
    }
    if (route === "DELETE /_control/requests") {
      this.requests = [];
      this.total = 0;
      this.maxInFlight = this.inFlight;
      return new Response(null, { status: 204 });
    }
    if (route === "POST /_control/reset") {
      this.reset();
      return new Response(null, { status: 204 });
    }
    if (route === "POST /_control/behaviour") {
      const body = await request.json().catch(() => undefined);
      const problem = _behaviourProblem(body);
      if (problem) return Response.json({ error: problem }, { status: 400 });
      if (body.latency_ms !== undefined) this.latencyMs = body.latency_ms;
      if (body.responses !== undefined) this.queue = [...body.responses];
      this.repeatLast = body.repeat_last ?? false;
      return new Response(null, { status: 204 });
    }
    return undefined;
  }
}

function _behaviourProblem(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return "body must be a JSON object";
  }
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!["latency_ms", "responses", "repeat_last"].includes(key)) return `unknown field ${key}`;
  }
  if (
    b.latency_ms !== undefined && !(Number.isInteger(b.latency_ms) && (b.latency_ms as number) >= 0)
  ) {
    return "latency_ms must be a non-negative integer";
  }
  if (b.responses !== undefined) {
    if (!Array.isArray(b.responses)) return "responses must be an array";
    for (const r of b.responses) {
      if (typeof r !== "object" || r === null || Array.isArray(r)) {
        return "each response must be an object";
      }
      const status = (r as Record<string, unknown>).status;
      if (
        status !== undefined &&
        !(Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 599)
      ) {
        return "status must be an integer in 200..599";
      }
    }
  }
  if (b.repeat_last !== undefined && typeof b.repeat_last !== "boolean") {
    return "repeat_last must be a boolean";
  }
  return undefined;
}

/** Turns a plain scripted answer `{ status, body?, headers? }` into a response. */
export function scriptedResponse(scripted: Scripted): Response {
  const headers = new Headers((scripted.headers as Record<string, string>) ?? {});
  const body = scripted.body;
  if (body === undefined || body === null) {
    return new Response(null, { status: scripted.status as number, headers });
  }
  if (typeof body === "string") {
    return new Response(body, { status: scripted.status as number, headers });
  }
  if (!headers.has("content-type")) headers.set("content-type", "application/json");
  return new Response(JSON.stringify(body), { status: scripted.status as number, headers });
}

/** A running stand-in. */
export interface Fake {
  url: string;
  control: FakeControl;
  close(): Promise<void>;
}

/** Serves a stand-in on 127.0.0.1 (port 0 picks a free one). */
export function serveFake(
  options: { port: number; hostname?: string; handler: FakeHandler; control?: FakeControl },
): Fake {
  const control = options.control ?? new FakeControl();
  const hostname = options.hostname ?? "127.0.0.1";
  const closing = new AbortController();
  const server = Deno.serve(
    { port: options.port, hostname, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      const controlled = await control.handle(request, url);
      if (controlled) return controlled;
      const text = await request.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      const recorded = control.record({
        at: new Date().toISOString(),
        method: request.method,
        path: url.pathname,
        ...(url.search ? { query: url.search } : {}),
        headers: Object.fromEntries(request.headers),
        body: json ?? text,
        raw: text,
      });
      control.inFlight++;
      control.maxInFlight = Math.max(control.maxInFlight, control.inFlight);
      try {
        if (control.latencyMs > 0) {
          // Cut short by close(), which would otherwise wait out a long latency.
          await new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              closing.signal.removeEventListener("abort", done);
              resolve();
            };
            const timer = setTimeout(done, control.latencyMs);
            closing.signal.addEventListener("abort", done);
          });
        }
        const response = await options.handler({ request, url, text, json }, control.next());
        recorded.status = response.status;
        return response;
      } catch (error) {
        // Deno answers 500; recorded so, or readers waiting for the answer (the inbox) wait forever.
        recorded.status = 500;
        throw error;
      } finally {
        control.inFlight--;
      }
    },
  );
  return {
    url: `http://${hostname}:${server.addr.port}`,
    control,
    close: () => {
      closing.abort();
      return server.shutdown();
    },
  };
}
