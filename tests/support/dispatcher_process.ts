/**
 * Runs the real long-running dispatcher (scripts/dispatcher.ts) as a child
 * process against the test stack, the way `npm start` runs it.
 *
 * @module
 */
import { stack } from "./stack.ts";
import { functionEnvironment } from "../../scripts/stack/stack.ts";

/** A running dispatcher process. */
export interface DispatcherProcess {
  child: Deno.ChildProcess;
  /** SIGTERM and wait; returns what it logged. */
  stop(): Promise<string>;
}

/** Starts a dispatcher process; `extraEnv` overrides the stack's function environment. */
export async function startDispatcher(
  extraEnv: Record<string, string> = {},
): Promise<DispatcherProcess> {
  // Under the edge-runtime lane the child runs with the lane's flags (--no-check --no-lock).
  const flags = (Deno.env.get("HERALD_DENO_RUN_FLAGS") ?? "").split(" ").filter(Boolean);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", ...flags, `${stack.root}/scripts/dispatcher.ts`],
    env: { ...(await functionEnvironment(stack, true)), ...extraEnv },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]).then(([out, err]) => out + err);
  return {
    child,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited; its output says why.
      }
      await child.status;
      return await output;
    },
  };
}

/** Polls `check` until it returns a value, or throws after `timeoutMs` with `what`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
