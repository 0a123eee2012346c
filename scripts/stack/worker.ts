/**
 * `npm run worker`: one more long-running dispatcher against the stack
 * `npm start` runs, with the variables its own dispatcher gets (the stand-ins
 * as providers, unless FCM_SERVICE_ACCOUNT is set). Run it as many times as
 * you like to watch several workers share the outbox; Ctrl-C stops it.
 *
 * @module
 */
import { loadStackConfig } from "./config.ts";
import { functionEnvironment } from "./stack.ts";

const stack = await loadStackConfig();
const worker = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "--no-prompt", "scripts/dispatcher.ts"],
  env: { ...await functionEnvironment(stack), ...Deno.env.toObject() },
  cwd: stack.root,
}).spawn();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => worker.kill(signal));
}
Deno.exit((await worker.status).code);
