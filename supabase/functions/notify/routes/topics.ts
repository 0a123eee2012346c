/**
 * Topic subscriptions: users (un)subscribe themselves; services name the
 * user with `?user_id=`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Caller } from "../../_shared/auth/caller.ts";
import { refused } from "../../_shared/db/refusals.ts";
import { asCaller } from "../../_shared/db/sessions.ts";
import { type AppEnv, validate } from "../../_shared/http/app.ts";
import { Problem } from "../../_shared/http/problem.ts";
import type { NotifyDeps } from "../deps.ts";
import { SubscriptionQuery, TopicParam } from "../schemas.ts";
import { asUser } from "./as_user.ts";

/** The topic routes, mounted at the function's root. */
export function topicRoutes({ sql }: Pick<NotifyDeps, "sql">): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  routes.get("/topics", async (c) => {
    const topics = await asUser(
      sql,
      c.get("caller"),
      "Topic subscriptions",
      (tx) => tx`select topic, created_at from herald.topic_subscriptions order by topic`,
      "read",
    );
    return c.json({ topics });
  });

  routes.put("/topics/:topic", async (c) => {
    const { topic } = validate(TopicParam, c.req.param(), "(path)");
    const userId = _subscriber(c.get("caller"), c.req.query());
    const [row] = await asCaller(
      sql,
      c.get("caller"),
      (tx) =>
        tx`with added as (
             insert into herald.topic_subscriptions (topic, user_id) values (${topic}, ${userId})
             on conflict (topic, user_id) do nothing
             returning topic, user_id, created_at)
           select * from added
           union all
           select topic, user_id, created_at from herald.topic_subscriptions
           where topic = ${topic} and user_id = ${userId} and not exists (select 1 from added)`,
    ).catch(_subscriptionRefused);
    return c.json(row);
  });

  routes.delete("/topics/:topic", async (c) => {
    const { topic } = validate(TopicParam, c.req.param(), "(path)");
    const userId = _subscriber(c.get("caller"), c.req.query());
    const deleted = await asCaller(
      sql,
      c.get("caller"),
      (tx) =>
        tx`delete from herald.topic_subscriptions where topic = ${topic} and user_id = ${userId}
         returning 1`,
    );
    if (deleted.length === 0) {
      throw new Problem(404, "not-found", `No subscription to '${topic}' for ${userId}.`);
    }
    return c.body(null, 204);
  });

  return routes;
}

/** Whose subscription: the user's own; a service must say whose. */
function _subscriber(caller: Caller, query: Record<string, string>): string {
  const { user_id: userId } = validate(SubscriptionQuery, query, "(query)");
  if (caller.kind === "user") {
    if (userId && userId !== caller.userId) {
      throw new Problem(403, "not-allowed", "Users manage only their own subscriptions.", [
        { field: "user_id", message: "must be yours or absent" },
      ]);
    }
    return caller.userId;
  }
  if (!userId) {
    throw new Problem(422, "validation", "Invalid user_id: services must name the subscriber.", [
      { field: "user_id", message: "is required with the service-role key" },
    ]);
  }
  return userId;
}

const _subscriptionRefused = refused({
  insufficient_privilege: {
    detail:
      "You may not join this topic yourself (herald.can_subscribe): topics with a ':' are managed by services.",
  },
  foreign_key_violation: {
    detail: "Invalid user_id: no such user.",
    field: "user_id",
    message: "no such user",
  },
});
