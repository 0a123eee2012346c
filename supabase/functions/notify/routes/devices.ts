/**
 * A user's devices: register (or refresh `last_seen_at` by registering
 * again), list, remove.
 *
 * @module
 */
import { Hono } from "hono";
import { type AppEnv, readJson, validate } from "../../_shared/http/app.ts";
import { Problem } from "../../_shared/http/problem.ts";
import type { NotifyDeps } from "../deps.ts";
import { IdParam, RegisterDevice } from "../schemas.ts";
import { asUser } from "./as_user.ts";

const DEVICE_COLUMNS =
  "id, token, platform, created_at, last_seen_at, disabled_at, disabled_reason";

/** The device routes, mounted at the function's root. */
export function deviceRoutes({ sql }: Pick<NotifyDeps, "sql">): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  routes.put("/devices", async (c) => {
    const input = await readJson(c.req.raw, RegisterDevice);
    const [device] = await asUser(
      sql,
      c.get("caller"),
      "Devices",
      (tx) =>
        tx`select ${tx.unsafe(DEVICE_COLUMNS)}
         from herald.register_device(${input.token}, ${input.platform})`,
    );
    return c.json(device);
  });

  routes.get("/devices", async (c) => {
    const devices = await asUser(
      sql,
      c.get("caller"),
      "Devices",
      (tx) =>
        tx`select ${tx.unsafe(DEVICE_COLUMNS)} from herald.device_tokens order by created_at, id`,
      "read",
    );
    return c.json({ devices });
  });

  routes.delete("/devices/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const deleted = await asUser(
      sql,
      c.get("caller"),
      "Devices",
      (tx) => tx`delete from herald.device_tokens where id = ${id} returning id`,
    );
    if (deleted.length === 0) throw new Problem(404, "not-found", `You have no device ${id}.`);
    return c.body(null, 204);
  });

  return routes;
}
