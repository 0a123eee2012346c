/**
 * A small RESP2 client for the local bridge: binary-safe, pipelined, and
 * keeping each reply's type (simple vs bulk string) so the bridge can encode
 * replies exactly as Upstash does. Local tooling only: functions never speak
 * TCP to Redis.
 *
 * @module
 */

/** One Redis reply with its RESP type. */
export type RespValue =
  | { type: "simple"; value: string }
  | { type: "error"; value: string }
  | { type: "integer"; value: number }
  | { type: "bulk"; value: Uint8Array | null }
  | { type: "array"; value: RespValue[] | null };

/** A command: name and arguments, as text or bytes. */
export type Command = (string | Uint8Array)[];

/** The connection to Redis failed; pending commands reject with this. */
export class RedisUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisUnavailable";
  }
}

const CRLF = new Uint8Array([13, 10]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes commands in RESP (arrays of bulk strings), back to back. */
export function encodeCommands(commands: Command[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const command of commands) {
    parts.push(encoder.encode(`*${command.length}\r\n`));
    for (const arg of command) {
      const bytes = typeof arg === "string" ? encoder.encode(arg) : arg;
      parts.push(encoder.encode(`$${bytes.length}\r\n`), bytes, CRLF);
    }
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Parses one reply from `buffer` at `offset`; undefined when more bytes are needed. */
export function parseReply(buffer: Uint8Array, offset: number): [RespValue, number] | undefined {
  const lineEnd = _indexOfCrlf(buffer, offset);
  if (lineEnd < 0) return undefined;
  const prefix = buffer[offset];
  const line = decoder.decode(buffer.subarray(offset + 1, lineEnd));
  const next = lineEnd + 2;
  switch (prefix) {
    case 43: // +
      return [{ type: "simple", value: line }, next];
    case 45: // -
      return [{ type: "error", value: line }, next];
    case 58: // :
      return [{ type: "integer", value: Number(line) }, next];
    case 36: { // $
      const length = Number(line);
      if (length < 0) return [{ type: "bulk", value: null }, next];
      if (buffer.length < next + length + 2) return undefined;
      return [{ type: "bulk", value: buffer.slice(next, next + length) }, next + length + 2];
    }
    case 42: { // *
      const count = Number(line);
      if (count < 0) return [{ type: "array", value: null }, next];
      const items: RespValue[] = [];
      let cursor = next;
      for (let i = 0; i < count; i++) {
        const parsed = parseReply(buffer, cursor);
        if (!parsed) return undefined;
        items.push(parsed[0]);
        cursor = parsed[1];
      }
      return [{ type: "array", value: items }, cursor];
    }
    default:
      throw new RedisUnavailable(`unexpected RESP type byte ${prefix}`);
  }
}

function _indexOfCrlf(buffer: Uint8Array, from: number): number {
  for (let i = from; i < buffer.length - 1; i++) {
    if (buffer[i] === 13 && buffer[i + 1] === 10) return i;
  }
  return -1;
}

interface Pending {
  expected: number;
  replies: RespValue[];
  resolve: (replies: RespValue[]) => void;
  reject: (error: Error) => void;
}

/** One pipelined connection; `send` writes a block of commands contiguously. */
class Connection {
  #conn: Deno.TcpConn;
  #pending: Pending[] = [];
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  readonly done: Promise<void>;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.done = this.#readLoop();
  }

  get closed() {
    return this.#closed;
  }

  send(commands: Command[]): Promise<RespValue[]> {
    if (this.#closed) return Promise.reject(new RedisUnavailable("connection closed"));
    const bytes = encodeCommands(commands);
    return new Promise((resolve, reject) => {
      this.#pending.push({ expected: commands.length, replies: [], resolve, reject });
      this.#writing = this.#writing.then(async () => {
        let written = 0;
        while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
      }).catch((error) => this.#fail(new RedisUnavailable(`write failed: ${error.message}`)));
    });
  }

  close() {
    this.#fail(new RedisUnavailable("connection closed"));
  }

  async #readLoop() {
    let buffer: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        const joined = new Uint8Array(buffer.length + n);
        joined.set(buffer);
        joined.set(chunk.subarray(0, n), buffer.length);
        let offset = 0;
        while (offset < joined.length) {
          const parsed = parseReply(joined, offset);
          if (!parsed) break;
          offset = parsed[1];
          const head = this.#pending[0];
          if (!head) throw new RedisUnavailable("reply without a request");
          head.replies.push(parsed[0]);
          if (head.replies.length === head.expected) {
            this.#pending.shift();
            head.resolve(head.replies);
          }
        }
        buffer = joined.slice(offset);
      }
      this.#fail(new RedisUnavailable("Redis closed the connection"));
    } catch (error) {
      this.#fail(
        error instanceof RedisUnavailable ? error : new RedisUnavailable((error as Error).message),
      );
    }
  }

  #fail(error: Error) {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed by the peer.
      }
    }
    for (const pending of this.#pending.splice(0)) pending.reject(error);
  }
}

/** A few pipelined connections, used round-robin and re-opened after failures. */
export class RespPool {
  #slots: (Promise<Connection> | undefined)[];
  #next = 0;
  #hostname: string;
  #port: number;

  constructor(options: { hostname?: string; port: number; size?: number }) {
    this.#hostname = options.hostname ?? "127.0.0.1";
    this.#port = options.port;
    this.#slots = new Array(options.size ?? 4).fill(undefined);
  }

  /** Sends a block of commands on one connection; replies in order. */
  async send(commands: Command[]): Promise<RespValue[]> {
    const slot = this.#next++ % this.#slots.length;
    let connection = await this.#slots[slot]?.catch(() => undefined);
    if (!connection || connection.closed) {
      const opening = Deno.connect({ hostname: this.#hostname, port: this.#port })
        .then((conn) => new Connection(conn))
        .catch((error) => {
          throw new RedisUnavailable(`cannot reach Redis: ${error.message}`);
        });
      this.#slots[slot] = opening;
      connection = await opening;
    }
    return await connection.send(commands);
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    const connections = await Promise.all(this.#slots.map((s) => s?.catch(() => undefined)));
    for (const connection of connections) connection?.close();
    await Promise.all(connections.map((c) => c?.done));
    this.#slots.fill(undefined);
  }
}
