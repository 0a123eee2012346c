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
 * Parses `Retry-After` (delta-seconds or HTTP-date) into milliseconds from `now`.
 *
 * @returns undefined when absent or unparseable
 */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
