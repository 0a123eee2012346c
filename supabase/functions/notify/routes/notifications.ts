/**
 * Notifications: notify, bulk fan-out and its progress, status, cancel.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import type { z } from "zod";
import { type Caller, requireService } from "../../_shared/auth/caller.ts";
import { asCaller, OutcomeUnknown, type Tx } from "../../_shared/db/sessions.ts";
import { refused } from "../../_shared/db/refusals.ts";
import { withinMs } from "../../_shared/resilience/time_limit.ts";
import { INLINE_SEND_DEFAULTS } from "../../_shared/config.ts";
import { databaseUnavailable } from "../../_shared/db/unavailable.ts";
import { dispatchBatch } from "../../_shared/dispatch/dispatcher.ts";
import type { ClaimedDelivery } from "../../_shared/outbox/delivery.ts";
import { claimedDelivery } from "../../_shared/outbox/outbox.ts";
import { type AppEnv, publicBase, readJson } from "../../_shared/http/app.ts";
import type { Answer } from "../../_shared/http/openapi.ts";
import { Problem } from "../../_shared/http/problem.ts";
import type { NotifyDeps } from "../deps.ts";
import type { Accepted, InlineResult } from "../answers.ts";
import { callerScope, sha256Hex } from "../../_shared/auth/caller_scope.ts";
import {
  claimKey,
  type IdempotentRequest,
  storeAnswer,
  type StoredAnswer,
} from "../idempotency.ts";
import { BulkRequest, IdempotencyKey, NotifyRequest } from "../schemas.ts";

type Ctx = Context<AppEnv>;

/** What enqueue answers. */
interface Enqueued {
  notification_id: string | null;
  deliveries: number;
  denied: string[];
  denied_count: number;
  /** The deliveries claimed for the inline attempt, as claimDue's rows. */
  claimed: Record<string, unknown>[] | null;
}

/** The notification routes, mounted at the function's root. */
export function notificationRoutes(deps: NotifyDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  const { sql } = deps;
  const inline = deps.inline ?? INLINE_SEND_DEFAULTS;

  // POST /notify in five steps: who may ask for what, once per key, accepted
  // (and, when small, claimed) in one transaction, logged, tried inline.
  routes.post("/", async (c) => {
    const caller = c.get("caller");
    const input = await readJson(c.req.raw, NotifyRequest);
    _refuseServiceOnlyFields(caller, input);
    const idempotent = await _idempotentRequest(c, input);
    const answer = await _acceptAndClaim(c, deps, inline, input, idempotent);
    if (answer.replayed) return _reply(c, answer, true);
    deps.log("info", "notification accepted", {
      request_id: c.get("requestId"),
      notification_id: answer.body.id,
      deliveries: answer.body.deliveries,
      denied: answer.body.denied_count,
    });
    if (answer.claimed.length === 0) return _reply(c, answer, false);
    return await _answerAfterInlineAttempt(c, deps, inline, answer, idempotent);
  });

  routes.post("/bulk", async (c) => {
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

  return routes;
}

/** Raw targets and an e-mail's subject or HTML are the service role's alone. */
function _refuseServiceOnlyFields(caller: Caller, input: z.output<typeof NotifyRequest>): void {
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
}

/**
 * Enqueues the notification (or replays the key's earlier answer) as the
 * caller; a small, due one's deliveries are written already claimed for the
 * inline attempt (herald.enqueue_and_claim).
 */
async function _acceptAndClaim(
  c: Ctx,
  deps: NotifyDeps,
  inline: { maxDeliveries: number },
  input: z.output<typeof NotifyRequest>,
  idempotent: IdempotentRequest | undefined,
) {
  const { user_ids: userIds = [], targets, ...content } = input;
  const due = !content.send_at || Date.parse(content.send_at) <= Date.now();
  // Claimed as they are written: no dispatcher can take them from the inline attempt.
  const claim = deps.dispatcher && due
    ? { leaseMs: deps.dispatcher.leaseMs ?? 60_000, max: inline.maxDeliveries }
    : undefined;
  return await asCaller(deps.sql, c.get("caller"), async (tx) => {
    const accepted = await _acceptOnce(
      tx,
      idempotent,
      () => _enqueue(tx, userIds, { ...content, targets }, c.get("requestId"), undefined, claim),
      `${publicBase(c)}/notifications`,
    );
    if (accepted.replayed) return accepted;
    return { ...accepted, claimed: (accepted.enqueued.claimed ?? []).map(claimedDelivery) };
  }).catch(_sqlToProblem);
}

/**
 * The answer once the inline attempt has had its budget: 201 with each
 * delivery's result. The notification is committed, so nothing here may
 * answer as if it were not (a 503 "nothing was accepted" would be retried
 * into a duplicate); without the attempt's results the answer is the plain
 * acceptance, which the key already holds.
 */
async function _answerAfterInlineAttempt(
  c: Ctx,
  deps: NotifyDeps,
  inline: { budgetMs: number },
  answer: StoredAnswer & { claimed: ClaimedDelivery[] },
  idempotent: IdempotentRequest | undefined,
) {
  const id = answer.body.id as string;
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
      await asCaller(deps.sql, c.get("caller"), (tx) => storeAnswer(tx, idempotent, settled));
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
}

async function _enqueue(
  tx: Tx,
  userIds: string[],
  content: Record<string, unknown>,
  requestId: string,
  topic?: string,
  claim?: { leaseMs: number; max: number },
): Promise<Enqueued> {
  const [row] = await tx`
    select notification_id, deliveries, denied, denied_count, claimed
    from herald.enqueue_and_claim(${userIds}::uuid[], ${tx.json(content as never)}, ${requestId}, ${
    topic ?? null
  }, ${claim ? `${claim.leaseMs} milliseconds` : null}::interval, ${claim?.max ?? null})`;
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
  const inTime = await withinMs(budgetMs, attempt).then(() => true, () => false);
  if (!inTime) deps.waitUntil?.(attempt);
  // Every delivery was claimed and written: answer from memory, no read-back.
  if (settled?.length === total) return settled;
  return await deps.sql`
    select id, recipient_id, channel, platform,
      case when status = 'pending' and locked_until > now() then 'sending' else status end as status,
      last_error,
      case when status = 'pending' and locked_until is null then next_attempt_at end
        as next_attempt_at
    from herald.deliveries
    where notification_id = ${notificationId}
      and created_at >= herald.notification_since(${notificationId})
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
    field: _fieldNamed,
    message: (message) => message,
  },
});

/**
 * The request field herald.enqueue's refusal names: its messages begin with
 * it ("send_at must be …"), or say which ("unknown content field x", "at
 * most 1000 targets per call").
 */
function _fieldNamed(message: string): string | undefined {
  const limit = message.match(/^at most \d+ (targets|recipients) per call/)?.[1];
  return message.match(/^unknown content field (\S+)/)?.[1] ??
    (limit === "recipients" ? "user_ids" : limit) ??
    message.match(/^([a-z_]+) must\b/)?.[1];
}
