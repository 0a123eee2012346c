/**
 * One dispatch round: claim due deliveries, group them by provider target,
 * ask the circuit breaker once per target, send through the target's slots,
 * tell the breaker once per target, write every result back in one statement.
 *
 * A round never outlives its lease: it claims no more than it can send in
 * time at the latency it has seen, starts no send that could still be in
 * flight when the lease ends, and gives what it did not send back unspent.
 *
 * @module
 */
import { type Channel, CHANNELS } from "../channels.ts";
import { type Sql, withinDeadline } from "../db/sessions.ts";
import { databaseUnavailable } from "../db/unavailable.ts";
import type { Logger } from "../log.ts";
import { claimDue, type DeliveryResult, recordResults } from "../outbox/outbox.ts";
import type { ResultWriter } from "../outbox/result_writer.ts";
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import type { Provider, Providers } from "../providers/provider.ts";
import type { SendOutcome } from "../providers/outcome.ts";
import { backoffMs, type BackoffOptions } from "../resilience/backoff.ts";
import type { CircuitBreaker } from "../resilience/breaker.ts";
import { createSendSlots, type Lane, type SendSlots } from "./send_slots.ts";
import type { StallWatch } from "./stall_watch.ts";

/** What a dispatcher needs. */
export interface DispatcherDeps {
  sql: Sql;
  /** One provider per configured channel; deliveries on other channels wait (and count attempts). */
  providers: Providers;
  /**
   * Why a channel without a provider has none, when it is configured but
   * unusable (a malformed FCM service account): its deliveries wait with this
   * as their error instead of "not configured".
   */
  unconfigured?: Partial<Record<Channel, { code: string; reason: string }>>;
  breaker: CircuitBreaker;
  /**
   * Sends in flight per target, shared by this process's rounds and, through
   * Redis, by every dispatcher. @default `concurrency` slots for this round alone
   */
  slots?: SendSlots;
  /** Permanent failures and dead letters are logged here at `warn`. */
  log?: Logger;
  /**
   * Notices this process standing still: a send that timed out across a stall
   * is this process's failure, not the target's (no breaker failure, no
   * attempt spent, no latency learned).
   */
  stalls?: StallWatch;
  /** The heartbeat id this process's claims carry, so others take them over if it goes silent (`heartbeat.ts`). */
  holder?: string;
  /** The `instance` label of the counters this dispatcher's write-backs add to (HERALD_INSTANCE). */
  instance?: string;
  /**
   * Writes results back, batching what this process's requests hand over at
   * once (`createResultWriter`: notify's inline attempts). @default each
   * round writes alone
   */
  writeResults?: ResultWriter;
  now?: () => number;
  /** @default 500 */
  batchSize?: number;
  /** @default 60_000 */
  leaseMs?: number;
  /** Sends in flight at once per target, when no `slots` are given: the adaptive limit's ceiling. @default 512 */
  concurrency?: number;
  /** Attempts before a delivery goes dead. @default 8 */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** The end of a lease kept free for writing results back. @default 5_000 (at most a quarter of the lease) */
  writeBackMs?: number;
}

/** Counts of one round, by what happened to each claimed delivery. */
export interface BatchReport {
  claimed: number;
  sent: number;
  retried: number;
  /** Not attempted because the target's breaker was open; no attempt spent. */
  deferred: number;
  /** Not attempted in time (the lease's end, or no free send slot); given back unspent. */
  released: number;
  failed: number;
  expired: number;
  dead: number;
  /** Results not written because another dispatcher took the lease over. */
  superseded: number;
}

/** Due again this soon after being given back, so dispatchers do not spin on them. */
const RELEASE_DELAY_MS = 1_000;

/** Waits between tries of a write-back while the database is unreachable. */
const WRITE_BACK_RETRY = { baseMs: 200, capMs: 2_000 };

/** Permanent failures logged one by one per round; the rest are counted. */
const LOGGED_FAILURES = 20;

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
  const leaseMs = deps.leaseMs ?? 60_000;
  const limit = deps.concurrency ?? 512;
  // Slots for this round alone (notify's inline attempt, at most 100 sends):
  // nothing to learn from across rounds, so it starts at its ceiling.
  const slots = deps.slots ?? createSendSlots({ limit, initialLimit: limit });
  // Every send must be over, and its result written, before the lease ends:
  // sends still in flight at the deadline are cut off and retried.
  const window = leaseMs - Math.min(deps.writeBackMs ?? 5_000, leaseMs / 4);
  const deadline = now() + window;
  const cutOff = new AbortController();
  const timer = setTimeout(() => cutOff.abort(new Error("the round's lease is ending")), window);
  // A frozen Postgres answers nothing: the claim gives up at the client's
  // deadline (what it took, if it commits later, comes back at its lease).
  const claimed = scope.claimed ?? await withinDeadline(
    deps.sql,
    claimDue(deps.sql, {
      limit: _claimLimit(deps, slots, window),
      leaseMs,
      notificationId: scope.notificationId,
      holder: deps.holder,
    }),
    "write",
  ).catch((error) => {
    clearTimeout(timer);
    throw error;
  });
  const { results, groups } = _byTarget(claimed, deps, now);
  const round: Round = {
    ...deps,
    slots,
    deadline,
    window,
    signal: cutOff.signal,
    releases: [],
  };
  try {
    const sent = await Promise.all(
      [...groups].map(([target, group]) => _sendGroup(target, group, round, now)),
    );
    results.push(...sent.flat());
  } finally {
    clearTimeout(timer);
  }

  const [recorded] = await Promise.all([
    _writeBack(deps, results, deadline + leaseMs, now),
    Promise.all(round.releases),
  ]);
  scope.onRecorded?.(claimed, results);
  if (deps.log) _logFailures(deps.log, claimed, results);
  return _report(claimed.length, results, recorded);
}

/**
 * The claimed deliveries grouped by provider target, and the results of
 * those settled without a send (expired, target disabled, no provider).
 */
function _byTarget(claimed: ClaimedDelivery[], deps: DispatcherDeps, now: () => number) {
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
  return { results, groups };
}

/** A round's counts, by what happened to each delivery. */
function _report(claimed: number, results: DeliveryResult[], recorded: number): BatchReport {
  const report: BatchReport = {
    claimed,
    sent: 0,
    retried: 0,
    deferred: 0,
    released: 0,
    failed: 0,
    expired: 0,
    dead: 0,
    superseded: results.length - recorded,
  };
  for (const r of results) {
    if (r.outcome === "deferred") report.deferred++;
    else if (r.outcome === "released") report.released++;
    else if (r.status === "pending") report.retried++;
    else report[r.status]++;
  }
  return report;
}

/**
 * Writes the results, retrying while the database is unreachable: results
 * kept in memory across a short outage spare every delivery of the round a
 * second send once its lease runs out. The write stays fenced by each
 * claim's lease, so a late one cannot overwrite a newer claimant's result.
 * Gives up (throws) after `until`.
 */
async function _writeBack(
  deps: DispatcherDeps,
  results: DeliveryResult[],
  until: number,
  now: () => number,
): Promise<number> {
  for (let attempt = 1;; attempt++) {
    try {
      const options = { instance: deps.instance };
      return deps.writeResults
        ? await deps.writeResults(results, options)
        : await recordResults(deps.sql, results, options);
    } catch (error) {
      const unavailable = databaseUnavailable(error);
      const wait = backoffMs(attempt, WRITE_BACK_RETRY);
      if (!unavailable || now() + wait > until) throw error;
      deps.log?.("warn", "writing a round's results failed; retrying", {
        results: results.length,
        error: unavailable,
      });
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/**
 * How many deliveries to claim: the batch, or fewer when sends are slow —
 * what the target's slots can send before the lease's end at the latency
 * seen lately.
 */
function _claimLimit(deps: DispatcherDeps, slots: SendSlots, window: number): number {
  const batchSize = deps.batchSize ?? 500;
  const latency = slots.typicalLatencyMs;
  if (latency === undefined) return batchSize;
  const longest = Math.max(
    0,
    ...Object.values(deps.providers).map((p) => p ? _startBudget(p, slots, window) : 0),
  );
  const waves = 1 + Math.floor(Math.max(0, window - longest) / Math.max(latency, 1));
  // Sized for the widest target's adaptive limit; a narrower one (a webhook endpoint) gives back what it cannot start.
  return Math.max(1, Math.min(batchSize, slots.widestLimit * waves));
}

/**
 * The least time before the deadline a send may start in: its timeout, or
 * less when sends have been quick lately, and never more than half the
 * round (a lease shorter than a timeout must still let sends happen).
 */
function _startBudget(provider: Provider, slots: SendSlots, window: number): number {
  const typical = slots.typicalLatencyMs;
  return Math.min(
    provider.timeoutMs,
    typical === undefined ? Infinity : 2 * typical + 1_000,
    window / 2,
  );
}

/** Expired, disabled or unprovided deliveries are settled without a send. */
function _settleWithoutSending(
  delivery: ClaimedDelivery,
  deps: DispatcherDeps,
  now: () => number,
): DeliveryResult | undefined {
  const base = _base(delivery);
  const { expiresAt, nowOrNever } = delivery.notification;
  // "Now or never" gets its one attempt however late it is claimed; FCM then
  // delivers it only if the device is reachable at once.
  const firstTry = nowOrNever && delivery.attempt === 1;
  if (expiresAt && expiresAt.getTime() <= now() && !firstTry) {
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
        CHANNELS[delivery.channel].target
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
        ...(deps.unconfigured?.[delivery.channel] ?? {
          code: "NOT_CONFIGURED",
          reason: `no provider is configured for channel '${delivery.channel}'`,
        }),
      },
      undefined,
      deps,
      now,
    );
  }
  return undefined;
}

/** What a round shares with each target's sends. */
type Round = DispatcherDeps & {
  slots: SendSlots;
  deadline: number;
  window: number;
  signal: AbortSignal;
  releases: Promise<void>[];
};

/** One target's share of a round, once admitted: what its steps below read. */
interface TargetSends {
  target: string;
  provider: Provider;
  lane: Lane;
  round: Round;
  now: () => number;
}

/** One send's outcome and the result to write; `stalled`: this process stood still, not the target. */
interface Attempted {
  outcome: SendOutcome;
  stalled: boolean;
  result: DeliveryResult;
}

/**
 * Sends one target's deliveries as the breaker, the slots and the lease
 * allow: admitted (or deferred while the breaker is open), probed when the
 * breaker is half-open, then sent.
 */
async function _sendGroup(
  target: string,
  group: { provider: Provider; deliveries: ClaimedDelivery[] },
  round: Round,
  now: () => number,
): Promise<DeliveryResult[]> {
  const { provider } = group;
  // Both ask Redis: in parallel, so the slots cost no round trip of their own.
  const [admission, lane] = await Promise.all([
    round.breaker.admit(target),
    round.slots.enter(target, provider.maxInFlight),
  ]);
  const sends: TargetSends = { target, provider, lane, round, now };
  try {
    if (admission.state === "open") {
      return group.deliveries.map((d) => _defer(sends, d, admission.retryAt));
    }
    if (admission.state === "closed") return await _sendAll(sends, group.deliveries);
    const probed = await _probe(sends, group.deliveries);
    return "settled" in probed
      ? probed.settled
      : [probed.probe, ...await _sendAll(sends, probed.rest)];
  } finally {
    // Given back while the results are written, not before.
    round.releases.push(lane.leave());
  }
}

/**
 * Half-open: one delivery tries the target. Any one of them, not the first
 * due: that is the one a failed probe deferred least (its own backoff, its
 * attempt refunded), a poison token that would probe forever.
 */
async function _probe(
  sends: TargetSends,
  queue: ClaimedDelivery[],
): Promise<{ settled: DeliveryResult[] } | { probe: DeliveryResult; rest: ClaimedDelivery[] }> {
  const { target, provider, round: { breaker } } = sends;
  const pick = Math.floor(Math.random() * queue.length);
  const rest = queue.filter((_, i) => i !== pick);
  const probe = await _sendInTime(sends, queue[pick]);
  if (!probe) {
    // No slot or no time for the probe: let the next caller probe.
    await breaker.record(target, { failures: 0, successes: 0, probe: true });
    return { settled: queue.map((d) => _release(sends, d)) };
  }
  const fault = probe.outcome.kind === "retry" && !probe.stalled;
  // A provider-wide outage is not the delivery's fault: a failed probe spends no attempt.
  if (fault && provider.breakerScope === "provider") probe.result.refundAttempt = true;
  const state = await breaker.record(target, {
    failures: fault ? 1 : 0,
    successes: fault || probe.stalled ? 0 : 1,
    probe: true,
    // The probe speaks for the target: any wait it asked for holds for everyone.
    retryAfterMs: probe.outcome.kind === "retry" ? probe.outcome.afterMs : undefined,
  });
  if (state.state === "open") {
    return { settled: [probe.result, ...rest.map((d) => _defer(sends, d, state.retryAt))] };
  }
  return { probe: probe.result, rest };
}

/**
 * Closed: sends all, but starts no new send once this round alone has seen
 * enough faults to open the breaker, or the target asked to be left alone.
 */
async function _sendAll(sends: TargetSends, queue: ClaimedDelivery[]): Promise<DeliveryResult[]> {
  const { target, round: { breaker } } = sends;
  let failures = 0;
  let successes = 0;
  let retryAfterMs: number | undefined;
  let waitMs = 0;
  const going = () => retryAfterMs === undefined && !breaker.trips(failures, failures + successes);
  const outcomes = await Promise.all(queue.map(async (delivery) => {
    const sent = await _sendInTime(sends, delivery, going);
    if (!sent) return undefined;
    if (sent.stalled) return sent.result;
    if (sent.outcome.kind === "retry") {
      // Only a first attempt's failure counts against the target. A delivery failing
      // again says more about itself (a poison token among healthy ones) than about
      // the provider: the retries of a 2 % brownout, arriving alone, opened it.
      if (delivery.attempt === 1) failures++;
      waitMs = Math.max(waitMs, sent.outcome.afterMs ?? 0);
    } else successes++;
    retryAfterMs ??= _throttle(sent.outcome);
    return sent.result;
  }));
  const state = failures + successes > 0
    ? await breaker.record(target, { failures, successes, probe: false, retryAfterMs, waitMs })
    : { state: "closed" as const };
  return outcomes.map((result, i) =>
    result ??
      (state.state === "open" ? _defer(sends, queue[i], state.retryAt) : _release(sends, queue[i]))
  );
}

/** Starts `delivery`'s send if a slot frees up in time (and `go` still says so); undefined when not. */
function _sendInTime(
  sends: TargetSends,
  delivery: ClaimedDelivery,
  go: () => boolean = () => true,
): Promise<Attempted | undefined> {
  const { provider, lane, round, now } = sends;
  return lane.run(
    () =>
      go() && now() + _startBudget(provider, round.slots, round.window) <= round.deadline
        ? _attempt(sends, delivery)
        : Promise.resolve(undefined),
    round.signal,
  );
}

/** One send, its latency learned by the slots and the lane, and the result to write. */
async function _attempt(sends: TargetSends, delivery: ClaimedDelivery): Promise<Attempted> {
  const { target, provider, lane, round, now } = sends;
  const started = performance.now();
  let outcome: SendOutcome;
  try {
    outcome = await provider.send(delivery, { signal: round.signal });
  } catch (error) {
    // A provider bug must cost one attempt, not the round.
    round.log?.("error", "provider threw instead of answering", {
      delivery_id: delivery.id,
      target,
      error: (error as Error).message,
    });
    outcome = { kind: "retry", code: "INTERNAL", reason: (error as Error).message };
  }
  const latency = performance.now() - started;
  const stalledMs = outcome.kind === "retry" && outcome.code === "TIMEOUT"
    ? round.stalls?.stalledSince(started) ?? 0
    : 0;
  if (stalledMs > 0 && outcome.kind === "retry") {
    return {
      outcome,
      stalled: true,
      result: _stalled(sends, delivery, outcome, stalledMs, latency),
    };
  }
  round.slots.observe(latency);
  // A send cut off by the round's own deadline says nothing about the target.
  lane.observe(latency, outcome.kind === "retry" && !round.signal.aborted);
  const { nowOrNever } = delivery.notification;
  return {
    outcome,
    stalled: false,
    result: _result(_base(delivery), outcome, latency, round, now, nowOrNever),
  };
}

/**
 * A send that timed out while this process stood still: its timer fired on
 * waking, so the target is not to blame. Tried again soon, the attempt
 * unspent (a stall must not dead-letter it).
 */
function _stalled(
  sends: TargetSends,
  delivery: ClaimedDelivery,
  outcome: SendOutcome & { kind: "retry" },
  stalledMs: number,
  latency: number,
): DeliveryResult {
  const { round, now } = sends;
  const stalled = {
    ...outcome,
    code: "DISPATCHER_STALLED",
    reason: `this dispatcher stood still ${
      Math.round(stalledMs)
    } ms while the send was in flight; the receiver may have got it`,
    afterMs: RELEASE_DELAY_MS,
  };
  if (delivery.notification.nowOrNever) {
    return _result(_base(delivery), stalled, latency, round, now, true);
  }
  return {
    ..._base(delivery),
    status: "pending",
    outcome: "retry",
    errorCode: stalled.code,
    error: stalled.reason,
    latencyMs: latency,
    refundAttempt: true,
    nextAttemptAt: new Date(now() + RELEASE_DELAY_MS),
  };
}

/** Not sent because the target's breaker is open. */
function _defer(sends: TargetSends, delivery: ClaimedDelivery, retryAt: number): DeliveryResult {
  const { target, provider, round, now } = sends;
  if (provider.breakerScope === "destination") {
    // The receiver is the delivery's own: waiting for it counts as a failed
    // attempt, so a receiver that never recovers ends in a dead letter.
    return _result(
      _base(delivery),
      {
        kind: "retry",
        code: "BREAKER_OPEN",
        reason: `circuit breaker for ${target} is open (recent attempts failed)`,
        afterMs: Math.max(0, retryAt - now()),
      },
      undefined,
      round,
      now,
    );
  }
  return {
    ..._base(delivery),
    status: "pending",
    outcome: "deferred",
    nextAttemptAt: new Date(retryAt),
    error: `circuit breaker for ${target} is open`,
  };
}

/** Not sent in time (the lease's end, or no free slot): given back unspent. */
function _release(sends: TargetSends, delivery: ClaimedDelivery): DeliveryResult {
  return {
    ..._base(delivery),
    status: "pending",
    outcome: "released",
    nextAttemptAt: new Date(sends.now() + RELEASE_DELAY_MS),
  };
}

function _base(
  delivery: ClaimedDelivery,
): Pick<DeliveryResult, "id" | "createdAt" | "lease" | "attempt"> {
  const { id, createdAt, lease, attempt } = delivery;
  return { id, createdAt, lease, attempt };
}

/** The wait a target asked of every caller, if this outcome carries one. */
function _throttle(outcome: SendOutcome): number | undefined {
  return outcome.kind === "retry" && outcome.throttled && outcome.afterMs
    ? outcome.afterMs
    : undefined;
}

/** Permanent failures and dead letters, at `warn`: their reasons need an operator's eye. */
function _logFailures(log: Logger, claimed: ClaimedDelivery[], results: DeliveryResult[]) {
  const terminal = results.filter((r) => r.status === "failed" || r.status === "dead");
  if (terminal.length === 0) return;
  const channels = new Map(claimed.map((d) => [d.id, d.channel]));
  for (const r of terminal.slice(0, LOGGED_FAILURES)) {
    log("warn", r.status === "dead" ? "delivery dead-lettered" : "delivery failed permanently", {
      delivery_id: r.id,
      channel: channels.get(r.id),
      error_code: r.errorCode,
      error: r.error,
    });
  }
  if (terminal.length > LOGGED_FAILURES) {
    log("warn", "more deliveries failed or were dead-lettered in this round", {
      count: terminal.length - LOGGED_FAILURES,
    });
  }
}

function _result(
  base: Pick<DeliveryResult, "id" | "createdAt" | "lease" | "attempt">,
  outcome: SendOutcome,
  latencyMs: number | undefined,
  deps: DispatcherDeps,
  now: () => number,
  nowOrNever = false,
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
      if (nowOrNever) {
        return {
          ...common,
          status: "expired",
          outcome: "expired",
          errorCode: outcome.code,
          error: `now or never (ttl_seconds 0), and the attempt failed: ${outcome.reason}`,
        };
      }
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
