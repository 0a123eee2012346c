/**
 * The one interface every delivery channel implements.
 *
 * @module
 */
import type { Channel } from "../channels.ts";
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import type { SendOutcome } from "./outcome.ts";

/** Delivers one channel's deliveries. */
export interface Provider {
  /**
   * The provider target `delivery` goes to: the unit a circuit breaker and
   * the concurrency limit guard (`fcm:<project>`, `email:<host>`,
   * `webhook:<endpoint id>`).
   */
  target(delivery: ClaimedDelivery): string;
  /**
   * What a target's breaker stands for. `provider` (FCM, the e-mail API): an
   * outage is nobody's delivery's fault, so deferring and probing spend no
   * attempts. `destination` (one webhook endpoint): the receiver is the
   * delivery's own, so while its breaker is open each deferral counts as a
   * failed attempt and the delivery backs off towards its dead letter.
   */
  readonly breakerScope: "provider" | "destination";
  /** The longest one send may take; a round starts no send it cannot finish within its lease. */
  readonly timeoutMs: number;
  /** Sends in flight per target at most, below the dispatcher's own limit (one customer's receiver). */
  readonly maxInFlight?: number;
  /**
   * Sends one delivery; never throws for provider, network or content trouble.
   * `signal` ends the send early (the round's lease is about to end): the
   * answer is then a retry.
   */
  send(delivery: ClaimedDelivery, options?: { signal?: AbortSignal }): Promise<SendOutcome>;
}

/** The configured providers; a channel without one keeps its deliveries waiting. */
export type Providers = Partial<Record<Channel, Provider>>;
