/**
 * Notifications: notify, bulk fan-out and its progress, status, cancel.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { type Caller, requireService } from "../../_shared/auth/caller.ts";
import { asCaller, OutcomeUnknown, type Tx } from "../../_shared/db/sessions.ts";
import { refused } from "../../_shared/db/refusals.ts";
import { INLINE_SEND_DEFAULTS } from "../../_shared/config.ts";
import { databaseUnavailable } from "../../_shared/db/unavailable.ts";
import { dispatchBatch } from "../../_shared/dispatch/dispatcher.ts";
import type { ClaimedDelivery } from "../../_shared/outbox/delivery.ts";
import { claimDue } from "../../_shared/outbox/outbox.ts";
import { type AppEnv, publicBase, readJson, validate } from "../../_shared/http/app.ts";
import type { Answer } from "../../_shared/http/openapi.ts";
import { Problem } from "../../_shared/http/problem.ts";
import type { NotifyDeps } from "../app.ts";
import type { Accepted, BulkProgress, Cancelled, InlineResult } from "../answers.ts";
import { callerScope, sha256Hex } from "../../_shared/auth/caller_scope.ts";
import {
  claimKey,
  type IdempotentRequest,
  storeAnswer,
  type StoredAnswer,
} from "../idempotency.ts";
import { BulkRequest, IdempotencyKey, IdParam, NotifyRequest } from "../schemas.ts";

type Ctx = Context<AppEnv>;

/** What enqueue answers. */
interface Enqueued {
  notification_id: string | null;
  deliveries: number;
  denied: string[];
  denied_count: number;
}

/** Registers the notification routes. */
export function notificationRoutes(app: Hono<AppEnv>, deps: NotifyDeps): void {
  const { sql } = deps;
  const inline = deps.inline ?? INLINE_SEND_DEFAULTS;

  app.post("/", async (c) => {
    const caller = c.get("caller");
    const input = await readJson(c.req.raw, NotifyRequest);
    if (input.targets?.length && caller.kind !== "service") {
      throw new Problem(403, "service-required", "Only the service role may notify raw targets.", [
        { field: "targets", message: "needs the service-role key" },
      ]);
    }
    if (input.overrides?.email && caller.kind !== "service") {
      throw new Problem(
        403,
        "service-required",
        "Only the service role may set an e-mail's subject or HTML.",
        [{ field: "overrides.email", message: "needs the service-role key" }],
      );
    }
    const { user_ids: userIds = [], targets, ...content } = input;
    const idempotent = await _idempotentRequest(c, input);
    const due = !content.send_at || Date.parse(content.send_at) <= Date.now();
    const answer = await asCaller(sql, caller, async (tx) => {
      const accepted = await _acceptOnce(
        tx,
        idempotent,
        () => _enqueue(tx, userIds, { ...content, targets }, c.get("requestId")),
        `${publicBase(c)}/notifications`,
      );
      if (accepted.replayed) return accepted;
      const { enqueued } = accepted;
      // A small notification is claimed before commit, so no dispatcher woken
      // by the commit can take it from the inline attempt. Claiming writes the
      // outbox, which only the dispatcher may: our code, not the caller's.
      let claimed: ClaimedDelivery[] = [];
      const inlineable = enqueued.deliveries > 0 && enqueued.deliveries <= inline.maxDeliveries;
      if (deps.dispatcher && due && inlineable) {
        // Back to the dispatcher's own role, in the same round trip as the claim.
        const asDispatcher = tx`select set_config('role', 'none', true)`.execute();
        asDispatcher.catch(() => {}); // a failure surfaces through the claim and the await below
        claimed = await claimDue(tx, {
          limit: inline.maxDeliveries,
          leaseMs: deps.dispatcher.leaseMs ?? 60_000,
          notificationId: enqueued.notification_id!,
        });
        await asDispatcher;
      }
      return { ...accepted, claimed };
    }).catch(_sqlToProblem);

    if (answer.replayed) return _reply(c, answer, true);
    const id = answer.body.id as string;
    deps.log("info", "notification accepted", {
      request_id: c.get("requestId"),
      notification_id: id,
      deliveries: answer.body.deliveries,
      denied: answer.body.denied_count,
    });
    if (!("claimed" in answer) || answer.claimed.length === 0) return _reply(c, answer, false);
    // Committed: nothing after this may answer as if it were not (a 503 "nothing was
    // accepted" would be retried into a duplicate). Without the attempt's results the
    // answer is the plain acceptance, which the key already holds.
    try {
      const results = await _attemptInline(
        deps,
        id,
        answer.claimed,
        answer.body.deliveries as number,
        inline.budgetMs,
      );
      const settled = { status: 201, body: { ...answer.body, results } };
      if (idempotent) {
        await asCaller(sql, caller, (tx) => storeAnswer(tx, idempotent, settled));
      }
      return _reply(c, settled, false);
    } catch (error) {
      const outage = error instanceof OutcomeUnknown || databaseUnavailable(error);
      deps.log(outage ? "warn" : "error", "accepted; the inline attempt's results are unknown", {
        request_id: c.get("requestId"),
        notification_id: id,
        error: (error as Error).message,
      });
      return _reply(c, answer, false);
    }
  });

  app.post("/bulk", async (c) => {
    const caller = requireService(c.get("caller"), "Bulk fan-out");
    const input = await readJson(c.req.raw, BulkRequest);
    const { user_ids: userIds, topic, ...content } = input;
    const idempotent = await _idempotentRequest(c, input);
    const answer = await asCaller(sql, caller, (tx) =>
      _acceptOnce(
        tx,
        idempotent,
        () => _enqueue(tx, userIds ?? [], content, c.get("requestId"), topic),
        `${publicBase(c)}/bulk`,
      )).catch(_sqlToProblem);
    deps.log("info", "bulk notification accepted", {
      request_id: c.get("requestId"),
      notification_id: answer.body.id,
      deliveries: answer.body.deliveries,
      topic,
    });
    return _reply(c, answer, answer.replayed);
  });

  app.get("/bulk/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const [job] = await asCaller(sql, c.get("caller"), (tx) =>
      tx`
        select n.id, n.audience, n.created_at, n.send_at,
          count(d.id)::int as total,
          count(d.id) filter (where d.status = 'pending')::int as pending,
          count(d.id) filter (where d.status = 'sent')::int as sent,
          count(d.id) filter (where d.status = 'failed')::int as failed,
          count(d.id) filter (where d.status = 'expired')::int as expired,
          count(d.id) filter (where d.status = 'cancelled')::int as cancelled,
          count(d.id) filter (where d.status = 'dead')::int as dead
        from herald.notifications n
        left join herald.deliveries d on d.notification_id = n.id
        -- Progress is the sender's: a recipient (RLS lets them see the
        -- notification) would count only their own deliveries.
        where n.id = ${id} and (herald.is_service() or n.sender_id = auth.uid())
        group by n.id`, "read");
    if (!job) throw new Problem(404, "not-found", `No notification ${id} is visible to you.`);
    const { total, pending, sent, failed, expired, cancelled, dead, ...rest } = job;
    return c.json(
      {
        id: rest.id,
        audience: rest.audience,
        created_at: rest.created_at,
        send_at: rest.send_at,
        total,
        counts: { pending, sent, failed, expired, cancelled, dead },
        done: pending === 0,
      } satisfies Answer<typeof BulkProgress>,
    );
  });

  app.get("/notifications/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const [notification] = await asCaller(sql, c.get("caller"), (tx) =>
      tx`
        select n.id, n.sender_id, n.title, n.body, n.image, n.data, n.category, n.priority,
          n.critical, n.overrides, n.send_at, n.expires_at, n.audience, n.request_id, n.created_at,
          (select count(*)::int from herald.deliveries d where d.notification_id = n.id)
            as delivery_count,
          coalesce((
            select jsonb_agg(jsonb_build_object(
              'id', d.id, 'recipient_id', d.recipient_id, 'channel', d.channel,
              'platform', d.platform, 'status', d.status, 'attempts', d.attempts,
              'next_attempt_at', case when d.status = 'pending' then d.next_attempt_at end,
              'last_error', d.last_error, 'provider_message_id', d.provider_message_id,
              'sent_at', d.sent_at,
              'attempt_log', coalesce((
                select jsonb_agg(jsonb_build_object(
                  'attempt', a.attempt, 'at', a.at, 'outcome', a.outcome,
                  'status_code', a.status_code, 'error_code', a.error_code,
                  'error', a.error, 'latency_ms', a.latency_ms, 'request_id', a.request_id)
                  order by a.id)
                from herald.delivery_attempts a where a.delivery_id = d.id), '[]'::jsonb)
            ) order by d.created_at, d.id)
            from (select d.id, d.recipient_id, d.channel, d.platform, d.status, d.attempts,
                    d.next_attempt_at, d.last_error, d.provider_message_id, d.sent_at, d.created_at
                  from herald.deliveries d where d.notification_id = n.id
                  order by d.created_at, d.id limit 1000) d), '[]'::jsonb) as deliveries
        from herald.notifications n
        where n.id = ${id}`, "read");
    if (!notification) {
      throw new Problem(404, "not-found", `No notification ${id} is visible to you.`);
    }
    return c.json(notification);
  });

  app.post("/notifications/:id/cancel", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const [{ cancelled }] = await asCaller(
      sql,
      c.get("caller"),
      (tx) => tx`select herald.cancel_notification(${id}) as cancelled`,
    ).catch(refused({ no_data_found: { detail: `You sent no notification ${id}.` } }));
    deps.log("info", "notification cancelled", {
      request_id: c.get("requestId"),
      notification_id: id,
      cancelled,
    });
    return c.json({ id, cancelled } satisfies Answer<typeof Cancelled>);
  });
}

async function _enqueue(
  tx: Tx,
  userIds: string[],
  content: Record<string, unknown>,
  requestId: string,
  topic?: string,
): Promise<Enqueued> {
  const [row] = await tx`
    select notification_id, deliveries, denied, denied_count
    from herald.enqueue(${userIds}::uuid[], ${tx.json(content as never)}, ${requestId}, ${
    topic ?? null
  })`;
  return row as Enqueued;
}

/**
 * Creates the notification once per Idempotency-Key: an earlier answer to the
 * same key and body is replayed; otherwise `enqueue` runs and its 202 answer
 * is stored with the key, in the caller's transaction.
 */
async function _acceptOnce(
  tx: Tx,
  idempotent: IdempotentRequest | undefined,
  enqueue: () => Promise<Enqueued>,
  /** Where its status is read, as the caller called this function; the id is appended. */
  statusBase: string,
): Promise<
  | (StoredAnswer & { replayed: true })
  | (StoredAnswer & { replayed: false; enqueued: Enqueued })
> {
  if (idempotent) {
    const earlier = await claimKey(tx, idempotent);
    if (earlier) return { ...earlier, replayed: true };
  }
  const enqueued = await enqueue();
  if (!enqueued.notification_id) _allDenied(enqueued, "user_ids");
  const fresh = {
    status: 202,
    body: _accepted(
      enqueued,
      `${statusBase}/${enqueued.notification_id}`,
    ),
  };
  if (idempotent) {
    await storeAnswer(tx, idempotent, { ...fresh, notificationId: enqueued.notification_id });
  }
  return { ...fresh, replayed: false, enqueued };
}

function _accepted(enqueued: Enqueued, location: string) {
  return {
    id: enqueued.notification_id,
    status_url: location,
    deliveries: enqueued.deliveries,
    denied: enqueued.denied,
    denied_count: enqueued.denied_count,
  } satisfies Answer<typeof Accepted>;
}

/** Nobody the caller named may be notified: a 403 naming each refused recipient. */
function _allDenied(enqueued: Enqueued, field: string): never {
  throw new Problem(
    403,
    "not-allowed",
    `You may not notify ${
      enqueued.denied_count === 1
        ? "this recipient"
        : `any of these ${enqueued.denied_count} recipients`
    } (can_notify refused).`,
    enqueued.denied.slice(0, 100).map((id) => ({ field, message: `may not notify ${id}` })),
  );
}

/**
 * The first attempt of a small notification, inside the request. Whatever is
 * still in flight when the budget runs out finishes in the background; the
 * claim's lease covers a function that dies meanwhile.
 */
async function _attemptInline(
  deps: NotifyDeps,
  notificationId: string,
  claimed: ClaimedDelivery[],
  total: number,
  budgetMs: number,
) {
  let settled: Record<string, unknown>[] | undefined;
  const attempt = dispatchBatch(deps.dispatcher!, {
    claimed,
    onRecorded: (_, results) => {
      const byId = new Map(results.map((r) => [r.id, r]));
      settled = claimed.map((d) => {
        const r = byId.get(d.id)!;
        return {
          id: d.id,
          recipient_id: d.recipientId,
          channel: d.channel,
          platform: d.platform,
          status: r.status,
          last_error: r.error ?? null,
          next_attempt_at: r.status === "pending" ? r.nextAttemptAt?.toISOString() ?? null : null,
        } satisfies Answer<typeof InlineResult>;
      });
    },
  }).catch((error) => {
    deps.log("error", "inline attempt failed; the dispatcher retries after the lease", {
      notification_id: notificationId,
      error: (error as Error).message,
    });
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outOfTime = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), budgetMs);
  });
  const finished = await Promise.race([attempt.then(() => "done" as const), outOfTime]);
  clearTimeout(timer);
  if (finished === "timeout") deps.waitUntil?.(attempt);
  // Every delivery was claimed and written: answer from memory, no read-back.
  if (settled?.length === total) return settled;
  return await deps.sql`
    select id, recipient_id, channel, platform,
      case when status = 'pending' and locked_until > now() then 'sending' else status end as status,
      last_error,
      case when status = 'pending' and locked_until is null then next_attempt_at end
        as next_attempt_at
    from herald.deliveries where notification_id = ${notificationId}
    order by created_at, id`;
}

async function _idempotentRequest(c: Ctx, input: unknown): Promise<IdempotentRequest | undefined> {
  const header = c.req.header("idempotency-key");
  if (header === undefined) return undefined;
  const parsed = IdempotencyKey.safeParse(header);
  if (!parsed.success) {
    throw new Problem(422, "validation", "Invalid Idempotency-Key header.", [
      { field: "Idempotency-Key", message: parsed.error.issues[0].message },
    ]);
  }
  return {
    caller: callerScope(c.get("caller") as Caller),
    key: parsed.data,
    hash: await sha256Hex(`${c.req.method} ${c.req.path} ${JSON.stringify(input)}`),
  };
}

function _reply(c: Ctx, answer: StoredAnswer, replayed: boolean) {
  const location = answer.body.status_url as string | undefined;
  const headers: Record<string, string> = location ? { location } : {};
  if (replayed) headers["idempotent-replayed"] = "true";
  return c.json(answer.body, answer.status as 201 | 202 | 403, headers);
}

/** What `herald.enqueue` refuses that is the caller's doing. */
const _sqlToProblem = refused({
  insufficient_privilege: { detail: (message) => message },
  invalid_parameter_value: {
    detail: (message) => `Invalid request: ${message}.`,
    field: "targets",
    message: (message) => message,
  },
});
