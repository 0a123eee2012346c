/**
 * Preferences: one document per user (time zone, quiet hours, opt-outs),
 * replaced as a whole.
 *
 * @module
 */
import { Hono } from "hono";
import { refused } from "../../_shared/db/refusals.ts";
import type { Tx } from "../../_shared/db/sessions.ts";
import { type AppEnv, readJson } from "../../_shared/http/app.ts";
import type { Answer } from "../../_shared/http/openapi.ts";
import type { StoredPreferences } from "../answers.ts";
import type { NotifyDeps } from "../deps.ts";
import { Preferences } from "../schemas.ts";
import { asUser } from "./as_user.ts";

/** The preference routes, mounted at the function's root. */
export function preferenceRoutes({ sql }: Pick<NotifyDeps, "sql">): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  routes.get("/preferences", async (c) => {
    const preferences = await asUser(sql, c.get("caller"), "Preferences", _readPreferences, "read");
    return c.json(preferences);
  });

  routes.put("/preferences", async (c) => {
    const input = await readJson(c.req.raw, Preferences);
    const preferences = await asUser(sql, c.get("caller"), "Preferences", async (tx) => {
      await tx`
        insert into herald.preferences (user_id, time_zone, quiet_start, quiet_end, updated_at)
        values (auth.uid(), ${input.time_zone}, ${input.quiet_hours?.start ?? null},
          ${input.quiet_hours?.end ?? null}, now())
        on conflict (user_id) do update
          set time_zone = excluded.time_zone, quiet_start = excluded.quiet_start,
            quiet_end = excluded.quiet_end, updated_at = now()`;
      await tx`delete from herald.opt_outs where user_id = auth.uid()`;
      if (input.opt_outs.length) {
        await tx`
          insert into herald.opt_outs (user_id, category, channel)
          select distinct auth.uid(), o.category, o.channel
          from jsonb_to_recordset(${tx.json(input.opt_outs)}) as o(category text, channel text)`;
      }
      return await _readPreferences(tx);
    }).catch(refused({
      // Intl and Postgres may disagree on a rare zone name; Postgres decides.
      check_violation: {
        detail: "Invalid time_zone: Postgres does not know it.",
        field: "time_zone",
        message: "is not a time zone the database knows",
      },
    }));
    return c.json(preferences);
  });

  return routes;
}

async function _readPreferences(tx: Tx) {
  const [row] = await tx`
    select p.time_zone, to_char(p.quiet_start, 'HH24:MI') as quiet_start,
      to_char(p.quiet_end, 'HH24:MI') as quiet_end,
      coalesce((select jsonb_agg(jsonb_build_object('category', o.category, 'channel', o.channel)
                order by o.category, o.channel)
                from herald.opt_outs o where o.user_id = auth.uid()), '[]') as opt_outs
    from (select auth.uid() as user_id) me
    left join herald.preferences p on p.user_id = me.user_id`;
  return {
    time_zone: row.time_zone ?? "UTC",
    quiet_hours: row.quiet_start ? { start: row.quiet_start, end: row.quiet_end } : null,
    opt_outs: row.opt_outs,
  } satisfies Answer<typeof StoredPreferences>;
}
