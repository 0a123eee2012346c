/**
 * One dispatch round: claim due deliveries, send each with bounded
 * concurrency, write every result back in one statement.
 *
 * @module
 */
import type { Sql } from "../db/sessions.ts";
import { claimDue, type DeliveryResult, recordResults } from "../outbox/outbox.ts";
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import type { FcmSender } from "../providers/fcm.ts";
import { buildFcmMessage } from "../providers/fcm_message.ts";
import type { SendOutcome } from "../providers/outcome.ts";
import { backoffMs, type BackoffOptions } from "../resilience/backoff.ts";

/** What a dispatcher needs. */
export interface DispatcherDeps {
  sql: Sql;
  /** Push sender; absent when FCM is not configured. */
  push?: FcmSender;
  now?: () => number;
  /** @default 500 */
  batchSize?: number;
  /** @default 60_000 */
  leaseMs?: number;
  /** Sends in flight at once. @default 64 */
  concurrency?: number;
  /** Attempts before a delivery goes dead. @default 8 */
  maxAttempts?: number;
  backoff?: BackoffOptions;
}

/** Counts of one round, by the status each delivery reached. */
export interface BatchReport {
  claimed: number;
  sent: number;
  retried: number;
  failed: number;
  expired: number;
  dead: number;
  /** Results not written because another dispatcher took the lease over. */
  superseded: number;
}

/**
 * Runs one round.
 *
 * @example
 * ```ts
 * const report = await dispatchBatch({ sql, push: createFcmSender({ projectId, tokens }) });
 * ```
 */
export async function dispatchBatch(deps: DispatcherDeps): Promise<BatchReport> {
  const now = deps.now ?? Date.now;
  const claimed = await claimDue(deps.sql, {
    limit: deps.batchSize ?? 500,
    leaseMs: deps.leaseMs ?? 60_000,
  });
  const results = await _mapConcurrent(
    claimed,
    deps.concurrency ?? 64,
    (delivery) => _attempt(delivery, deps, now),
  );
  const recorded = await recordResults(deps.sql, results);
  const report: BatchReport = {
    claimed: claimed.length,
    sent: 0,
    retried: 0,
    failed: 0,
    expired: 0,
    dead: 0,
    superseded: results.length - recorded,
  };
  for (const r of results) {
    if (r.status === "pending") report.retried++;
    else report[r.status]++;
  }
  return report;
}

async function _attempt(
  delivery: ClaimedDelivery,
  deps: DispatcherDeps,
  now: () => number,
): Promise<DeliveryResult> {
  const base = { id: delivery.id, lease: delivery.lease, attempt: delivery.attempt };
  const expiresAt = delivery.notification.expiresAt;
  if (expiresAt && expiresAt.getTime() <= now()) {
    return {
      ...base,
      status: "expired",
      outcome: "expired",
      error: "time to live passed before sending",
    };
  }
  if (delivery.targetDisabled) {
    return {
      ...base,
      status: "failed",
      outcome: "failed",
      errorCode: "TARGET_DISABLED",
      error: "the device token was disabled after this notification was requested",
    };
  }
  const started = performance.now();
  const outcome = await _send(delivery, deps, now);
  const latencyMs = performance.now() - started;
  return _result(base, outcome, latencyMs, deps, now);
}

function _send(
  delivery: ClaimedDelivery,
  deps: DispatcherDeps,
  now: () => number,
): Promise<SendOutcome> {
  if (delivery.channel === "push" && deps.push) {
    return deps.push(buildFcmMessage(delivery, now()));
  }
  // Kept pending (and retried up to the cap) rather than failed, so configuring
  // the channel later still delivers what was accepted.
  return Promise.resolve({
    kind: "retry",
    code: "NOT_CONFIGURED",
    reason: `no provider is configured for channel '${delivery.channel}'`,
  });
}

function _result(
  base: Pick<DeliveryResult, "id" | "lease" | "attempt">,
  outcome: SendOutcome,
  latencyMs: number,
  deps: DispatcherDeps,
  now: () => number,
): DeliveryResult {
  const common = { ...base, statusCode: outcome.statusCode, latencyMs };
  switch (outcome.kind) {
    case "sent":
      return { ...common, status: "sent", outcome: "sent", providerMessageId: outcome.providerId };
    case "permanent":
      return {
        ...common,
        status: "failed",
        outcome: "failed",
        errorCode: outcome.code,
        error: outcome.reason,
        disableTarget: outcome.disableTarget,
      };
    case "retry": {
      if (base.attempt >= (deps.maxAttempts ?? 8)) {
        return {
          ...common,
          status: "dead",
          outcome: "dead",
          errorCode: outcome.code,
          error: `attempts exhausted; last: ${outcome.reason}`,
        };
      }
      const waitMs = Math.max(backoffMs(base.attempt, deps.backoff), outcome.afterMs ?? 0);
      return {
        ...common,
        status: "pending",
        outcome: "retry",
        errorCode: outcome.code,
        error: outcome.reason,
        nextAttemptAt: new Date(now() + waitMs),
      };
    }
  }
}

async function _mapConcurrent<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
