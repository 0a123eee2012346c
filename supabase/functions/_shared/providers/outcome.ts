/**
 * What a provider says about one send, as data. Every provider's `classify`
 * maps its wire responses to exactly one of these.
 *
 * @module
 */

/** The result of one send attempt. */
export type SendOutcome =
  | { kind: "sent"; providerId: string; statusCode: number }
  | {
    kind: "retry";
    reason: string;
    code?: string;
    statusCode?: number;
    /** The least time the provider asked us to wait (Retry-After, quota rules). */
    afterMs?: number;
    /**
     * `afterMs` holds for every send to this target, not just this one (an
     * account's rate limit or quota, an endpoint's `Retry-After`): the breaker
     * opens for that long.
     */
    throttled?: boolean;
  }
  | {
    kind: "permanent";
    reason: string;
    code?: string;
    statusCode?: number;
    /** The address is dead (e.g. unregistered token): stop sending to it. */
    disableTarget: boolean;
  };

/**
 * The longest wait a provider's `Retry-After` can impose: the backoff's own
 * cap. A provider that asks for years (a bug, a hostile receiver) would
 * otherwise park its deliveries and open its breaker until then; past the
 * hour the next attempt asks again.
 */
export const RETRY_AFTER_CAP_MS = 3_600_000;

/**
 * Parses `Retry-After` (delta-seconds or HTTP-date) into milliseconds from
 * `now`, at most {@linkcode RETRY_AFTER_CAP_MS}.
 *
 * @returns undefined when absent or unparseable
 */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : Date.parse(trimmed) - now;
  return Number.isNaN(ms) ? undefined : Math.min(Math.max(0, ms), RETRY_AFTER_CAP_MS);
}
