/**
 * The one interface every delivery channel implements.
 *
 * @module
 */
import type { Channel, ClaimedDelivery } from "../outbox/delivery.ts";
import type { SendOutcome } from "./outcome.ts";

/** Delivers one channel's deliveries. */
export interface Provider {
  /**
   * The provider target `delivery` goes to: the unit a circuit breaker guards
   * (`fcm:<project>`, `email:<provider>`, `webhook:<host>`).
   */
  target(delivery: ClaimedDelivery): string;
  /** Sends one delivery; never throws for provider, network or content trouble. */
  send(delivery: ClaimedDelivery): Promise<SendOutcome>;
}

/** The configured providers; a channel without one keeps its deliveries waiting. */
export type Providers = Partial<Record<Channel, Provider>>;
