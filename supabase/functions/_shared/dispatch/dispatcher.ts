/**
 * One dispatch round: claim due deliveries, group them by provider target,
 * ask the circuit breaker once per target, send with bounded concurrency,
 * tell the breaker once per target, write every result back in one statement.
 *
 * @module
 */
import type { Sql } from "../db/sessions.ts";
import { claimDue, type DeliveryResult, recordResults } from "../outbox/outbox.ts";
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import type { Provider, Providers } from "../providers/provider.ts";
import type { SendOutcome } from "../providers/outcome.ts";
import { backoffMs, type BackoffOptions } from "../resilience/backoff.ts";
import type { CircuitBreaker } from "../resilience/breaker.ts";

/** What a dispatcher needs. */
export interface DispatcherDeps {
  sql: Sql;
  /** One provider per configured channel; deliveries on other channels wait (and count attempts). */
  providers: Providers;
  breaker: CircuitBreaker;
  now?: () => number;
  /** @default 500 */
  batchSize?: number;
  /** @default 60_000 */
  leaseMs?: number;
  /** Sends in flight at once, across all targets. @default 64 */
  concurrency?: number;
  /** Attempts before a delivery goes dead. @default 8 */
  maxAttempts?: number;
  backoff?: BackoffOptions;
}

/** Counts of one round, by what happened to each claimed delivery. */
export interface BatchReport {
  claimed: number;
  sent: number;
  retried: number;
  /** Not attempted because the target's breaker was open; no attempt spent. */
  deferred: number;
  failed: number;
  expired: number;
  dead: number;
  /** Results not written because another dispatcher took the lease over. */
  superseded: number;
}

/**
 * Runs one round, over every due delivery or only one notification's (the
 * notify function's inline first attempt).
 *
 * @example
 * ```ts
 * const report = await dispatchBatch({ sql, providers: { push }, breaker: createBreaker({ redis }) });
 * ```
 */
export async function dispatchBatch(
  deps: DispatcherDeps,
  scope: {
    notificationId?: string;
    /** Deliveries already claimed (notify claims inside its enqueue transaction); no claim is made. */
    claimed?: ClaimedDelivery[];
    /** Sees each claimed delivery's result once it is written (notify answers with them). */
    onRecorded?: (claimed: ClaimedDelivery[], results: DeliveryResult[]) => void;
  } = {},
): Promise<BatchReport> {
  const now = deps.now ?? Date.now;
  const claimed = scope.claimed ?? await claimDue(deps.sql, {
    limit: deps.batchSize ?? 500,
    leaseMs: deps.leaseMs ?? 60_000,
    notificationId: scope.notificationId,
  });
  const results: DeliveryResult[] = [];
  const groups = new Map<string, { provider: Provider; deliveries: ClaimedDelivery[] }>();
  for (const delivery of claimed) {
    const settled = _settleWithoutSending(delivery, deps, now);
    if (settled) {
      results.push(settled);
      continue;
    }
    const provider = deps.providers[delivery.channel]!;
    const target = provider.target(delivery);
    const group = groups.get(target) ?? { provider, deliveries: [] };
    group.deliveries.push(delivery);
    groups.set(target, group);
  }
  const limit = _limiter(deps.concurrency ?? 64);
  const sent = await Promise.all(
    [...groups].map(([target, group]) => _sendGroup(target, group, deps, limit, now)),
  );
  results.push(...sent.flat());

  const recorded = await recordResults(deps.sql, results);
  scope.onRecorded?.(claimed, results);
  const report: BatchReport = {
    claimed: claimed.length,
    sent: 0,
    retried: 0,
    deferred: 0,
    failed: 0,
    expired: 0,
    dead: 0,
    superseded: results.length - recorded,
  };
  for (const r of results) {
    if (r.outcome === "deferred") report.deferred++;
    else if (r.status === "pending") report.retried++;
    else report[r.status]++;
  }
  return report;
}

/** Expired, disabled or unprovided deliveries are settled without a send. */
function _settleWithoutSending(
  delivery: ClaimedDelivery,
  deps: DispatcherDeps,
  now: () => number,
): DeliveryResult | undefined {
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
      error: `the ${
        delivery.channel === "webhook" ? "webhook endpoint" : "device token"
      } was disabled after this notification was requested`,
    };
  }
  if (!deps.providers[delivery.channel]) {
    // Retried up to the cap rather than failed, so configuring the channel in
    // time still delivers what was accepted; dead letters can be replayed after.
    return _result(
      base,
      {
        kind: "retry",
        code: "NOT_CONFIGURED",
        reason: `no provider is configured for channel '${delivery.channel}'`,
      },
      undefined,
      deps,
      now,
    );
  }
  return undefined;
}

/** Sends one target's deliveries as the breaker allows. */
async function _sendGroup(
  target: string,
  group: { provider: Provider; deliveries: ClaimedDelivery[] },
  deps: DispatcherDeps,
  limit: <T>(task: () => Promise<T>) => Promise<T>,
  now: () => number,
): Promise<DeliveryResult[]> {
  const { breaker } = deps;
  const defer = (delivery: ClaimedDelivery, retryAt: number): DeliveryResult => ({
    id: delivery.id,
    lease: delivery.lease,
    attempt: delivery.attempt,
    status: "pending",
    outcome: "deferred",
    nextAttemptAt: new Date(retryAt),
    error: `circuit breaker for ${target} is open`,
  });
  const attempt = async (delivery: ClaimedDelivery) => {
    const started = performance.now();
    const outcome = await group.provider.send(delivery);
    const base = { id: delivery.id, lease: delivery.lease, attempt: delivery.attempt };
    return {
      fault: outcome.kind === "retry",
      result: _result(base, outcome, performance.now() - started, deps, now),
    };
  };

  const admission = await breaker.admit(target);
  if (admission.state === "open") {
    return group.deliveries.map((d) => defer(d, admission.retryAt));
  }
  const results: DeliveryResult[] = [];
  let queue = group.deliveries;
  if (admission.state === "probe") {
    const [first, ...rest] = queue;
    const probe = await limit(() => attempt(first));
    results.push(probe.result);
    const state = await breaker.record(target, {
      failures: probe.fault ? 1 : 0,
      successes: probe.fault ? 0 : 1,
      probe: true,
    });
    if (state.state === "open") return [...results, ...rest.map((d) => defer(d, state.retryAt))];
    queue = rest;
  }

  // Closed: send all, but stop starting new sends once this round alone has
  // seen enough faults to open the breaker.
  let failures = 0;
  let successes = 0;
  const outcomes = await Promise.all(queue.map((delivery) =>
    limit(async () => {
      if (failures >= breaker.threshold) return undefined;
      const sent = await attempt(delivery);
      if (sent.fault) failures++;
      else successes++;
      return sent.result;
    })
  ));
  const state = failures + successes > 0
    ? await breaker.record(target, { failures, successes, probe: false })
    : { state: "closed" as const };
  const retryAt = state.state === "open" ? state.retryAt : now() + 1_000;
  outcomes.forEach((result, i) => results.push(result ?? defer(queue[i], retryAt)));
  return results;
}

/** A shared limit on tasks in flight. */
function _limiter(concurrency: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    // A finishing task hands its slot straight to the next waiter.
    if (active < concurrency) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

function _result(
  base: Pick<DeliveryResult, "id" | "lease" | "attempt">,
  outcome: SendOutcome,
  latencyMs: number | undefined,
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
