/**
 * An Upstash-compatible REST bridge in front of a real redis-server, so the
 * unmodified `@upstash/redis` client — the one functions use in production —
 * runs against real Redis locally.
 *
 * `POST /` runs one command (`["SET","k","v"]`), `POST /pipeline` several,
 * `POST /multi-exec` several atomically; `GET` or `POST /<cmd>/<arg>/…` works
 * for curl, a POST body in that form being the last argument. As on Upstash,
 * the token may come as `?_token=` instead of `Authorization: Bearer`, other
 * methods are a 405, and every form refuses the same commands: nothing a
 * caller sends can block or change the state of a shared connection.
 * With `Upstash-Encoding: base64` every string in a result is base64 except a
 * plain `OK` status, which is what the client expects. Bodies are read
 * whatever their content type, as Upstash does (its documented `curl -d`
 * examples send them form-encoded).
 *
 * Not as on Upstash: a request from a web page (any `Origin` header) is a
 * 403. This bridge's token is a well-known local one, and a page may POST a
 * text/plain body with `?_token=` to 127.0.0.1 without a CORS preflight; the
 * clients it serves (functions, Kong, tests) never send `Origin`.
 *
 * @module
 */
import { loadStackConfig } from "./config.ts";
import { type Command, RedisUnavailable, RespPool, type RespValue } from "./resp.ts";

/** Options for {@linkcode startBridge}. */
export interface BridgeOptions {
  port: number;
  hostname?: string;
  redisHost?: string;
  redisPort: number;
  token: string;
}

const MAX_BODY_BYTES = 10 * 1024 * 1024;

/**
 * Commands that would block, or change the state of a shared connection
 * (transactions, the selected database, replies, replication, cluster mode).
 */
const REFUSED = new Set([
  "BLPOP",
  "BRPOP",
  "BRPOPLPUSH",
  "BLMOVE",
  "BLMPOP",
  "BZPOPMIN",
  "BZPOPMAX",
  "BZMPOP",
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "UNSUBSCRIBE",
  "PUNSUBSCRIBE",
  "MONITOR",
  "SELECT",
  "AUTH",
  "HELLO",
  "QUIT",
  "RESET",
  "MULTI",
  "EXEC",
  "DISCARD",
  "WATCH",
  "UNWATCH",
  "SUNSUBSCRIBE",
  "CLIENT",
  "READONLY",
  "READWRITE",
  "ASKING",
  "SYNC",
  "PSYNC",
  "REPLCONF",
  "WAIT",
  "WAITAOF",
]); // deno-fmt-ignore

/** Commands that block only with a BLOCK argument. */
const BLOCKING_WITH_ARGUMENT = new Set(["XREAD", "XREADGROUP"]);

class BadRequest extends Error {}

/**
 * Serves the bridge until `close()`.
 *
 * @example
 * ```ts
 * const bridge = await startBridge({ port: 8079, redisPort: 6379, token: "t" });
 * const redis = new Redis({ url: bridge.url, token: "t" });
 * ```
 */
export function startBridge(
  options: BridgeOptions,
): Promise<{ url: string; close(): Promise<void> }> {
  const pool = new RespPool({ hostname: options.redisHost, port: options.redisPort });
  const scripts = new UpstashScripts();
  const expected = new TextEncoder().encode(`Bearer ${options.token}`);
  const server = Deno.serve({
    port: options.port,
    hostname: options.hostname ?? "127.0.0.1",
    onListen: () => {},
  }, async (request) => {
    if (request.headers.has("origin")) {
      return Response.json({ error: "requests from web pages are refused" }, { status: 403 });
    }
    const url = new URL(request.url);
    const given = new TextEncoder().encode(
      request.headers.get("authorization") ??
        (url.searchParams.has("_token") ? `Bearer ${url.searchParams.get("_token")}` : ""),
    );
    if (!_constantTimeEqual(given, expected)) {
      return Response.json({ error: "Unauthorized" }, { status: 401 });
    }
    const base64 = request.headers.get("upstash-encoding")?.toLowerCase() === "base64";
    const encode = (value: RespValue) => _toJson(value, base64);
    const path = url.pathname;
    const allowed = path === "/" || path === "/pipeline" || path === "/multi-exec"
      ? ["POST"]
      : ["GET", "POST"];
    if (!allowed.includes(request.method)) {
      return Response.json({ error: `${request.method} is not allowed on ${path}` }, {
        status: 405,
        headers: { allow: allowed.join(", ") },
      });
    }
    try {
      if (path === "/pipeline" || path === "/multi-exec") {
        const commands = await scripts.adapt(_commandList(await _readJson(request)));
        if (path === "/pipeline") {
          const replies = await pool.send(commands);
          return Response.json(
            replies.map((r) => r.type === "error" ? { error: r.value } : { result: encode(r) }),
          );
        }
        const replies = await pool.send([["MULTI"], ...commands, ["EXEC"]]);
        const exec = replies[replies.length - 1];
        if (exec.type === "error") return Response.json({ error: exec.value }, { status: 400 });
        if (exec.type !== "array" || !exec.value) {
          return Response.json({ error: "transaction aborted" }, { status: 400 });
        }
        return Response.json(
          exec.value.map((r) => r.type === "error" ? { error: r.value } : { result: encode(r) }),
        );
      }
      const command = path === "/"
        ? _command(await _readJson(request))
        : await _pathCommand(path, request);
      const [reply] = await pool.send(await scripts.adapt([command]));
      if (reply.type === "error") return Response.json({ error: reply.value }, { status: 400 });
      return Response.json({ result: encode(reply) });
    } catch (error) {
      if (error instanceof BadRequest) {
        return Response.json({ error: error.message }, { status: 400 });
      }
      if (error instanceof RedisUnavailable) {
        return Response.json({ error: `Redis unavailable: ${error.message}` }, { status: 503 });
      }
      throw error;
    }
  });
  return Promise.resolve({
    url: `http://${options.hostname ?? "127.0.0.1"}:${server.addr.port}`,
    async close() {
      await server.shutdown();
      await pool.close();
    },
  });
}

/**
 * Upstash accepts Lua shebang flags redis-server does not know
 * (`#!lua flags=allow-key-locking`, which `@upstash/ratelimit` sends). Like
 * Upstash, the bridge runs such scripts: the shebang becomes a comment, and
 * EVALSHA with the original script's SHA1 runs the adapted one.
 */
class UpstashScripts {
  readonly #adaptedSha = new Map<string, string>();

  async adapt(commands: Command[]): Promise<Command[]> {
    return await Promise.all(commands.map((command) => this.#adapt(command)));
  }

  async #adapt(command: Command): Promise<Command> {
    const arg = (i: number) => typeof command[i] === "string" ? command[i] as string : "";
    const name = arg(0).toUpperCase();
    const scriptAt = name === "EVAL" || name === "EVAL_RO"
      ? 1
      : name === "SCRIPT" && arg(1).toUpperCase() === "LOAD"
      ? 2
      : -1;
    if (scriptAt > 0 && /^#!lua\b.*\bflags=/.test(arg(scriptAt))) {
      const original = arg(scriptAt);
      const adapted = original.replace(/^#!/, "--");
      this.#adaptedSha.set(await _sha1(original), await _sha1(adapted));
      return command.with(scriptAt, adapted);
    }
    if (name === "EVALSHA" || name === "EVALSHA_RO") {
      const adapted = this.#adaptedSha.get(arg(1).toLowerCase());
      if (adapted) return command.with(1, adapted);
    }
    return command;
  }
}

async function _sha1(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function _readJson(request: Request): Promise<unknown> {
  const length = Number(request.headers.get("content-length") ?? 0);
  if (length > MAX_BODY_BYTES) throw new BadRequest(`body over ${MAX_BODY_BYTES} bytes`);
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) throw new BadRequest(`body over ${MAX_BODY_BYTES} bytes`);
  try {
    return JSON.parse(text);
  } catch {
    throw new BadRequest("body is not valid JSON");
  }
}

function _command(value: unknown): Command {
  if (!Array.isArray(value) || value.length === 0) {
    throw new BadRequest('a command is a non-empty JSON array, e.g. ["GET","key"]');
  }
  return _allowed(value.map((arg, i) => {
    if (typeof arg === "string") return arg;
    if (typeof arg === "number" && Number.isFinite(arg)) return String(arg);
    if (typeof arg === "boolean") return String(arg);
    throw new BadRequest(`argument ${i} must be a string or a number`);
  }));
}

/** `/set/key/value`: the path's segments, and a POST body as the last argument. */
async function _pathCommand(path: string, request: Request): Promise<Command> {
  let command: string[];
  try {
    command = path.slice(1).split("/").map(decodeURIComponent);
  } catch {
    throw new BadRequest("the path is not valid percent-encoding");
  }
  if (command[0] === "") throw new BadRequest("name a command: /<command>/<arg>/…");
  if (request.method === "POST") {
    const length = Number(request.headers.get("content-length") ?? 0);
    if (length > MAX_BODY_BYTES) throw new BadRequest(`body over ${MAX_BODY_BYTES} bytes`);
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.length > MAX_BODY_BYTES) throw new BadRequest(`body over ${MAX_BODY_BYTES} bytes`);
    if (body.length > 0) command.push(new TextDecoder().decode(body));
  }
  return _allowed(command);
}

/** The command, if the bridge may run it on a shared connection. */
function _allowed(command: string[]): Command {
  const name = command[0].toUpperCase();
  if (REFUSED.has(name)) {
    throw new BadRequest(`${name} is not supported over REST (connections are shared)`);
  }
  if (
    BLOCKING_WITH_ARGUMENT.has(name) && command.some((arg) => arg.toUpperCase() === "BLOCK")
  ) {
    throw new BadRequest(`${name} with BLOCK is not supported over REST (connections are shared)`);
  }
  return command;
}

function _commandList(value: unknown): Command[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new BadRequest("a pipeline is a non-empty JSON array of command arrays");
  }
  return value.map(_command);
}

/** Upstash's JSON for a reply: bulk and simple strings base64 when asked, except status OK. */
function _toJson(value: RespValue, base64: boolean): unknown {
  switch (value.type) {
    case "integer":
      return value.value;
    case "simple":
      return base64 && value.value !== "OK" ? btoa(value.value) : value.value;
    case "error":
      return value.value;
    case "bulk":
      if (value.value === null) return null;
      return base64 ? _bytesToBase64(value.value) : new TextDecoder().decode(value.value);
    case "array":
      return value.value === null ? null : value.value.map((v) => _toJson(v, base64));
  }
}

function _bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function _constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

if (import.meta.main) {
  const stack = await loadStackConfig();
  const bridge = await startBridge({
    port: stack.ports.bridge,
    redisPort: stack.ports.redis,
    token: stack.redisRestToken,
  });
  console.log(`Upstash-compatible bridge on ${bridge.url} → redis 127.0.0.1:${stack.ports.redis}`);
}
