/**
 * Runs one function's `index.ts` as the local stack's edge runtime does,
 * with one addition: its `Deno.serve` answers only the stack's internal
 * address. Each function has a port of its own here (the real edge runtime
 * has none: its functions are isolates behind one front door), and every
 * 127.0.0.0/8 address reaches a socket bound to 127.0.0.1, so without this a
 * function's port was a way around Kong's key-auth, rate limit and
 * ip-restriction.
 *
 * `deno run … scripts/stack/function_host.ts supabase/functions/<name>/index.ts`
 *
 * @module
 */
import { refuseOutsider } from "./internal_address.ts";

type Handler = (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;

const serve = Deno.serve.bind(Deno) as (...args: unknown[]) => Deno.HttpServer;
const guard = (handler: Handler): Handler => (request, info) =>
  refuseOutsider(info) ?? handler(request, info);

(Deno as { serve: unknown }).serve = (...args: unknown[]) => {
  const last = args.length - 1;
  if (typeof args[last] === "function") args[last] = guard(args[last] as Handler);
  else if (typeof (args[last] as { handler?: Handler })?.handler === "function") {
    const options = args[last] as { handler: Handler };
    args[last] = { ...options, handler: guard(options.handler) };
  }
  return serve(...args);
};

await import(new URL(Deno.args[0], `file://${Deno.cwd()}/`).href);
