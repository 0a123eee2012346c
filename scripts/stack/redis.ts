/**
 * The stack's own redis-server. Kept on disk (AOF) for the dev stack so a
 * second `npm start` finds its breaker state again; memory only for tests.
 *
 * @module
 */
import type { StackConfig } from "./config.ts";
import type { Supervisor } from "./supervisor.ts";

/** Starts redis-server on the stack's port and waits until it answers PING. */
export async function startRedis(stack: StackConfig, supervisor: Supervisor): Promise<void> {
  const dir = `${stack.dataDir}/redis`;
  await Deno.mkdir(dir, { recursive: true });
  const persistence = stack.name === "dev"
    ? ["--appendonly", "yes", "--save", ""]
    : ["--appendonly", "no", "--save", ""];
  await supervisor.spawn({
    name: "redis",
    command: "redis-server",
    args: [
      "--port",
      String(stack.ports.redis),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
      ...persistence,
    ],
  });
  await _waitForPong(stack.ports.redis);
  supervisor.keepAlive("redis");
}

async function _waitForPong(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(new TextEncoder().encode("PING\r\n"));
        const buffer = new Uint8Array(16);
        const n = await conn.read(buffer);
        if (n && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("+PONG")) return;
      } finally {
        conn.close();
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis-server did not answer on port ${port} within 20 s`);
}
