/**
 * An in-process dispatcher wired exactly as production wires it (same
 * configuration, same providers, the stand-ins as peers), with a breaker of
 * its own so tests do not share breaker state.
 *
 * @module
 */
import { functionEnvironment } from "../../scripts/stack/stack.ts";
import { loadConfig } from "../../supabase/functions/_shared/config.ts";
import { createSql, type Sql } from "../../supabase/functions/_shared/db/sessions.ts";
import type { DispatcherDeps } from "../../supabase/functions/_shared/dispatch/dispatcher.ts";
import { createDispatcherDeps } from "../../supabase/functions/_shared/dispatch/dispatcher_deps.ts";
import { createSendSlots } from "../../supabase/functions/_shared/dispatch/send_slots.ts";
import { createRedis } from "../../supabase/functions/_shared/redis/client.ts";
import {
  type BreakerOptions,
  createBreaker,
} from "../../supabase/functions/_shared/resilience/breaker.ts";
import { stack } from "./stack.ts";

/** A dispatcher's dependencies plus its SQL client to close. */
export async function testDispatcher(
  overrides: Partial<DispatcherDeps> = {},
  breaker: BreakerOptions = {},
  env: Record<string, string> = {},
): Promise<DispatcherDeps & { close(): Promise<void> }> {
  const config = loadConfig({ ...await functionEnvironment(stack, true), ...env });
  const sql: Sql = createSql({ url: stack.dbUrl, max: 4, applicationName: "herald-test" });
  const deps = createDispatcherDeps(config, sql, () => {});
  const redis = createRedis(config.redis!);
  return {
    ...deps,
    breaker: createBreaker({ redis, prefix: `herald:test:${crypto.randomUUID()}:`, ...breaker }),
    // The slots every dispatcher shares (as production's), sized like the overrides ask.
    slots: createSendSlots({
      limit: overrides.concurrency ?? config.dispatch.concurrency,
      redis,
    }),
    ...overrides,
    close: () => sql.end(),
  };
}
