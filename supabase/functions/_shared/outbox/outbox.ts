/**
 * The outbox queries: claim due deliveries under a lease, record results.
 *
 * @module
 */
import type { Sql, Tx } from "../db/sessions.ts";
import { ATTEMPT_BUCKETS, errorClass, QUEUE_BUCKETS } from "../metrics/catalogue.ts";
import type { ClaimedDelivery } from "./delivery.ts";

/** Options for {@linkcode claimDue}. */
export interface ClaimOptions {
  limit: number;
  /** How long the claim holds before another dispatcher may take the rows. */
  leaseMs: number;
  /** Only this notification's deliveries (notify's inline first attempt). */
  notificationId?: string;
  /**
   * The claiming dispatcher's heartbeat id: another dispatcher that finds it
   * silent makes these rows due before the lease ends. None for function
   * invocations (their rows wait out the lease).
   */
  holder?: string;
}

/** Of a round's claim, the share kept for the fan-out lane while urgent lanes have work. */
export const FAN_OUT_SHARE = 0.2;

/**
 * Due rows by lane: critical/high (0), normal (1), fan-out (2), each the
 * oldest due first (lanes 0 and 1 through the urgent due index, fan-out
 * through its own). Up to `limit` rows of each lane
 * are locked; the claim keeps `limit` of them: first the fan-out lane's
 * guaranteed share, then lanes 0, 1 and the rest of 2. Rows locked and not
 * kept are free again when the statement ends.
 */
function _byLane(sql: Sql | Tx, options: ClaimOptions) {
  const share = Math.max(1, Math.floor(options.limit * FAN_OUT_SHARE));
  // Materialized: each lane's locking read runs once, as written. The lane is
  // a literal, so even a generic plan can use the urgent lanes' partial index.
  const lane = (n: 0 | 1 | 2) =>
    sql`lane${sql.unsafe(String(n))} as materialized (
      select id, created_at, locked_until, ${sql.unsafe(String(n))} as lane, next_attempt_at
      from herald.deliveries
      where status = 'pending' and lane = ${sql.unsafe(String(n))} and next_attempt_at <= now()
      order by next_attempt_at limit ${options.limit} for update skip locked)`;
  return sql`${lane(0)}, ${lane(1)}, ${lane(2)}, due as (
    select id, created_at, locked_until as unreported_lease from (
      select *, row_number() over (partition by lane order by next_attempt_at) as rank
      from (select * from lane0 union all select * from lane1 union all select * from lane2) l
    ) ranked
    order by case when lane = 2 and rank <= ${share} then -1 else lane end, next_attempt_at
    limit ${options.limit})`;
}

/** One notification's due rows, from its own index (notify's inline first attempt). */
function _oneNotification(sql: Sql | Tx, options: ClaimOptions) {
  return sql`due as (
    select id, created_at, locked_until as unreported_lease from herald.deliveries
    where status = 'pending' and next_attempt_at <= now()
      and notification_id = ${options.notificationId!}
      and created_at >= herald.notification_since(${options.notificationId!})
    limit ${options.limit}
    for update skip locked)`;
}

/**
 * Claims up to `limit` due deliveries. Each claim counts as an attempt and
 * moves `next_attempt_at` to the lease's end, so rows of a dispatcher that
 * dies are due again exactly when its lease runs out.
 */
export async function claimDue(sql: Sql | Tx, options: ClaimOptions): Promise<ClaimedDelivery[]> {
  const rows = await sql`
    with ${options.notificationId ? _oneNotification(sql, options) : _byLane(sql, options)},
    claimed as (
      update herald.deliveries d
      set attempts = d.attempts + 1,
          locked_until = now() + make_interval(secs => ${options.leaseMs / 1000}),
          next_attempt_at = now() + make_interval(secs => ${options.leaseMs / 1000}),
          locked_by = ${options.holder ?? null}::uuid,
          updated_at = now()
      from due
      -- By (id, created_at): each lookup prunes to one day's partition.
      where d.id = due.id and d.created_at = due.created_at
      returning d.id, d.created_at::text as row_created_at, d.created_at as made,
        d.notification_id as of_notification, d.attempts, d.channel, d.target, d.platform, d.recipient_id,
        d.webhook_endpoint_id, due.unreported_lease, d.locked_until::text as lease,
        case d.channel
          when 'push' then coalesce((select t.disabled_at is not null from herald.device_tokens t
                                     where t.id = d.device_token_id), false)
          when 'webhook' then coalesce((select e.disabled_at is not null
                                        from herald.webhook_endpoints e
                                        where e.id = d.webhook_endpoint_id), true)
          else false
        end as target_disabled,
        -- jsonb, not text[]: postgres.js parses arrays only once it has read
        -- their types on that connection, and two first queries on a fresh
        -- pool can race that lookup (the array then arrives as "{whsec_…}").
        case when d.channel = 'webhook' then
          (select to_jsonb(array_remove(array[e.secret,
                    case when e.previous_secret_expires_at > now() then e.previous_secret end],
                    null))
           from herald.webhook_endpoints e where e.id = d.webhook_endpoint_id)
        end as secrets
    ), content as (
      -- Each notification by (id, created_at), one lookup per row: a join
      -- would let the planner match every notification's created_at first.
      select c.*, n.id as notification_id, n.title, n.body, n.image, n.data, n.category,
        n.priority, n.overrides, n.expires_at, n.now_or_never, n.validate_only, n.created_at,
        n.request_id
      from claimed c cross join lateral (
        select * from herald.notifications n
        where n.id = c.of_notification and n.created_at = c.made limit 1) n
    ), unreported as (
      -- A lease that ran out without a write-back: that attempt's outcome is
      -- unknown (the provider may have received it), and the log says so.
      insert into herald.delivery_attempts (delivery_id, attempt, outcome, error, request_id)
      select c.id, c.attempts - 1, 'unknown',
        'the dispatcher holding this attempt never reported its outcome (it stopped, went ' ||
        'silent or overran its lease); the receiver may have got it', c.request_id
      from content c where c.unreported_lease is not null
    )
    select * from content`;
  return rows.map(claimedDelivery);
}

/**
 * A claimed row as the dispatcher sees it: a row of claimDue, or an element
 * of the `claimed` JSON that herald.enqueue_and_claim returns for an inline attempt
 * (its times arrive as text there).
 */
export function claimedDelivery(r: Record<string, unknown>): ClaimedDelivery {
  return {
    id: r.id as string,
    createdAt: r.row_created_at as string,
    attempt: r.attempts as number,
    channel: r.channel as ClaimedDelivery["channel"],
    target: r.target as string,
    platform: r.platform as ClaimedDelivery["platform"],
    recipientId: r.recipient_id as string | null,
    webhookEndpointId: r.webhook_endpoint_id as string | null,
    targetDisabled: r.target_disabled as boolean,
    secrets: (r.secrets as string[] | null) ?? [],
    lease: r.lease as string,
    notification: {
      id: r.notification_id as string,
      title: r.title as string | null,
      body: r.body as string | null,
      image: r.image as string | null,
      data: r.data as Record<string, string>,
      category: r.category as string | null,
      priority: r.priority as "normal" | "high",
      overrides: r.overrides as ClaimedDelivery["notification"]["overrides"],
      expiresAt: r.expires_at == null ? null : new Date(r.expires_at as string | Date),
      nowOrNever: r.now_or_never as boolean,
      validateOnly: r.validate_only as boolean,
      createdAt: new Date(r.created_at as string | Date),
      requestId: r.request_id as string | null,
    },
  };
}

/** What happened to one claimed delivery. */
export interface DeliveryResult {
  id: string;
  /** The claim's `createdAt`: with the id, where the row is. */
  createdAt: string;
  lease: string;
  attempt: number;
  /** The delivery's new status; `pending` means "try again at nextAttemptAt". */
  status: "pending" | "sent" | "failed" | "expired" | "dead";
  /**
   * How the attempt log describes this attempt. `deferred` (an open circuit
   * breaker) and `released` (no time or send slot left in the round) were
   * never made: the attempt is given back and not logged.
   */
  outcome: "sent" | "retry" | "failed" | "expired" | "dead" | "deferred" | "released";
  /** The attempt was made and is logged, but does not count against the delivery (a failed probe). */
  refundAttempt?: boolean;
  nextAttemptAt?: Date;
  providerMessageId?: string;
  error?: string;
  statusCode?: number;
  errorCode?: string;
  latencyMs?: number;
  /** Disable the delivery's device token or webhook endpoint (it is dead at the provider). */
  disableTarget?: boolean;
}

/**
 * Writes a batch of results in one statement: delivery rows, attempt log,
 * target hygiene (dead tokens and gone webhook endpoints are disabled) and
 * the metrics counters (outcomes, attempts by error class, latencies, targets
 * disabled), under the writer's `instance` label. A row whose lease was taken
 * over by another dispatcher, or that was cancelled meanwhile, is left alone
 * and not counted.
 *
 * The statement is `herald.record_result_batch`, whose plan lives as long as
 * the connection. Under load, write through a `createResultWriter`
 * (`result_writer.ts`), which batches concurrent callers' results.
 *
 * @returns how many deliveries were updated
 */
export async function recordResults(
  sql: Sql,
  results: DeliveryResult[],
  options: { instance?: string } = {},
): Promise<number> {
  return (await recordResultIds(sql, results, options)).size;
}

/** {@linkcode recordResults}, answering the ids of the deliveries updated. */
export async function recordResultIds(
  sql: Sql,
  results: DeliveryResult[],
  options: { instance?: string } = {},
): Promise<Set<string>> {
  if (results.length === 0) return new Set();
  const rows = results.map((r) => ({
    id: r.id,
    created_at: r.createdAt,
    lease: r.lease,
    attempt: r.attempt,
    status: r.status,
    outcome: r.outcome,
    next_attempt_at: r.nextAttemptAt?.toISOString() ?? null,
    provider_message_id: _storable(r.providerMessageId),
    error: _storable(r.error?.slice(0, 1000)),
    status_code: r.statusCode ?? null,
    error_code: _storable(r.errorCode),
    latency_ms: r.latencyMs === undefined ? null : Math.round(r.latencyMs),
    disable_target: r.disableTarget ?? false,
    refund: r.refundAttempt === true || r.outcome === "deferred" || r.outcome === "released",
    error_class: errorClass(r.outcome, r.errorCode),
  }));
  const instance = options.instance ?? "";
  const span = _span(results.map((r) => r.createdAt));
  const written = await sql`
    select id from herald.record_result_batch(${sql.json(rows)},
      ${results.map((r) => r.id)}::uuid[], ${span.from}::timestamptz, ${span.to}::timestamptz,
      ${instance}, ${_negated(ATTEMPT_BUCKETS)}::float8[], ${
    _negated(QUEUE_BUCKETS)
  }::float8[]) id`;
  return new Set(written.map((r) => r.id as string));
}

/**
 * The earliest and latest of `createdAt` texts (Postgres's ISO output, e.g.
 * `2026-12-07 14:01:46.626562+00`) to the millisecond, widened to whole
 * milliseconds; unbounded (null) if one cannot be read.
 */
function _span(createdAt: string[]): { from: string | null; to: string | null } {
  // Read only what is certainly ISO: a bound read wrongly would hide rows
  // from the write-back, and their sends would be made again after the lease.
  const iso = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d(:\d\d)?$/;
  const ms = createdAt.map((t) =>
    iso.test(t) ? Date.parse(t.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00")) : NaN
  );
  if (ms.some(Number.isNaN)) return { from: null, to: null };
  return {
    from: new Date(Math.min(...ms)).toISOString(),
    to: new Date(Math.max(...ms) + 1).toISOString(),
  };
}

/**
 * A provider's text as Postgres can store it: without NUL, which jsonb and
 * text refuse. One such character in a receiver's answer would otherwise fail
 * the whole round's write-back, and its sends would be made again, forever.
 */
function _storable(text: string | null | undefined): string | null {
  return text == null ? null : text.replaceAll("\0", "\uFFFD");
}

/** Histogram bounds negated, ascending: what `width_bucket` needs to count the bounds below a value. */
function _negated(bounds: number[]): number[] {
  return bounds.map((b) => -b).reverse();
}
