/**
 * Webhooks: one `POST` per delivery to the customer's endpoint, signed per
 * Standard Webhooks and checked by the SSRF guard first, and the table that
 * maps the endpoint's answers to {@linkcode SendOutcome}s.
 *
 * @module
 */
import { requestSignal } from "../net/request_signal.ts";
import {
  checkDestination,
  denoResolver,
  normaliseAllowedHost,
  type Resolve,
} from "../net/ssrf_guard.ts";
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import { retryAfterMs, type SendOutcome } from "./outcome.ts";
import type { Provider } from "./provider.ts";
import { signWebhook } from "../webhooks/standard_webhooks.ts";

/** The `type` of every event Herald sends. */
export const WEBHOOK_EVENT_TYPE = "notification.delivery";

/** Sent as `user-agent`, so receivers can tell Herald's calls apart. */
export const WEBHOOK_USER_AGENT = "Herald-Webhooks/1";

/** Statuses besides 5xx that mean "try again later". */
const RETRYABLE_STATUSES = new Set([408, 425, 429]);

/** How much of a `Location` header a reason repeats. */
const MAX_LOCATION_CHARS = 200;

/**
 * Maps one endpoint response to an outcome: 2xx sent; 410 gone (disable the
 * endpoint); 3xx a failure, as redirects are not followed; 408, 425, 429 and
 * 5xx retried, honouring `Retry-After` for the whole endpoint; any other
 * status a failure.
 *
 * A success carries an empty `providerId`: receivers have no id of their own to
 * give back, and the `webhook-id` they deduplicate on is the delivery id, which
 * the delivery row already holds.
 */
export function classifyWebhook(status: number, headers: Headers, now: number): SendOutcome {
  if (status >= 200 && status < 300) return { kind: "sent", providerId: "", statusCode: status };
  if (status === 410) {
    return {
      kind: "permanent",
      code: "GONE",
      statusCode: status,
      reason: "the endpoint answered 410 Gone",
      disableTarget: true,
    };
  }
  if (status >= 300 && status < 400) {
    const location = headers.get("location")?.slice(0, MAX_LOCATION_CHARS);
    return {
      kind: "permanent",
      code: "REDIRECT",
      statusCode: status,
      reason: `the endpoint redirected (${status})${
        location ? ` to ${location}` : ""
      }; redirects are not followed`,
      disableTarget: false,
    };
  }
  if (RETRYABLE_STATUSES.has(status) || status >= 500) {
    const afterMs = retryAfterMs(headers.get("retry-after"), now);
    return {
      kind: "retry",
      code: `HTTP_${status}`,
      statusCode: status,
      reason: `the endpoint answered ${status}`,
      // The endpoint asked to be left alone: its breaker holds every delivery back.
      ...(afterMs === undefined ? {} : { afterMs, throttled: true }),
    };
  }
  return {
    kind: "permanent",
    code: `HTTP_${status}`,
    statusCode: status,
    reason: `the endpoint answered ${status}`,
    disableTarget: false,
  };
}

/** Options for {@linkcode createWebhookProvider}. */
export interface WebhookProviderOptions {
  /**
   * Hosts the SSRF guard lets through unchecked: `host` (any port) or
   * `host:port` (that port only), e.g. the local stack's receiver at
   * `127.0.0.1:54329`.
   * @default []
   */
  allowHosts?: string[];
  /** Time limit of one attempt, DNS check included. @default 15_000 */
  timeoutMs?: number;
  /** Requests in flight to one endpoint at most: a customer's receiver, not a provider's fleet. @default 16 */
  maxInFlight?: number;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** @default Date.now */
  now?: () => number;
  /**
   * Looks up endpoint hosts for the SSRF guard.
   * @default A and AAAA through `Deno.resolveDns`; where the runtime lacks it,
   *   none, and only IP literals and allow-listed hosts are reachable
   */
  resolve?: Resolve;
}

/**
 * Creates the webhook provider.
 *
 * One piece: the provider's methods share this closure's options, resolver and signing.
 *
 * @throws {RangeError} when an `allowHosts` entry is not a host, or `timeoutMs` or `maxInFlight` is not positive
 *
 * @example
 * ```ts
 * const webhook = createWebhookProvider({ allowHosts: ["127.0.0.1"] });
 * const outcome = await webhook.send(delivery);
 * ```
 */
export function createWebhookProvider(options: WebhookProviderOptions = {}): Provider {
  const allowHosts = new Set((options.allowHosts ?? []).map(normaliseAllowedHost));
  const timeoutMs = options.timeoutMs ?? 15_000;
  if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(
      `Cannot create webhook provider: 'timeoutMs' must be a positive integer, got ${timeoutMs}`,
    );
  }
  const maxInFlight = options.maxInFlight ?? 16;
  if (!(Number.isInteger(maxInFlight) && maxInFlight > 0)) {
    throw new RangeError(
      `Cannot create webhook provider: 'maxInFlight' must be a positive integer, got ${maxInFlight}`,
    );
  }
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const resolve = options.resolve ?? denoResolver();

  return {
    // Each endpoint has its own breaker: one customer's failing receiver must
    // not hold back its neighbours on a shared host.
    target: (delivery) => `webhook:${delivery.webhookEndpointId ?? _host(delivery.target)}`,
    breakerScope: "destination",
    timeoutMs,
    maxInFlight,

    async send(delivery, sendOptions) {
      const signal = requestSignal(timeoutMs, sendOptions?.signal);
      const destination = await checkDestination(delivery.target, { allowHosts, resolve, signal });
      if (destination.kind === "blocked") {
        return {
          kind: "permanent",
          code: "SSRF_BLOCKED",
          reason: `refused: ${destination.reason}`,
          // Every later delivery would be refused the same way; the owner
          // re-points the endpoint (which re-enables it) to fix it.
          disableTarget: true,
        };
      }
      if (destination.kind === "unresolved") {
        return { kind: "retry", code: "DNS", reason: destination.reason };
      }
      // Secrets that cannot sign are Herald's configuration trouble, never the
      // customer's: retried (and dead-lettered, replayable) rather than failed.
      if (!Array.isArray(delivery.secrets) || delivery.secrets.length === 0) {
        return { kind: "retry", code: "NO_SECRET", reason: "the endpoint has no signing secret" };
      }

      const at = now();
      const timestamp = Math.floor(at / 1000);
      const body = JSON.stringify(_payload(delivery, at));
      let signature: string;
      try {
        signature = await signWebhook(delivery.secrets, delivery.id, timestamp, body);
      } catch (error) {
        return { kind: "retry", code: "INVALID_SECRET", reason: (error as Error).message };
      }

      let response: Response;
      try {
        response = await doFetch(destination.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": WEBHOOK_USER_AGENT,
            "webhook-id": delivery.id,
            "webhook-timestamp": String(timestamp),
            "webhook-signature": signature,
            // The correlation id of the request that asked for it, for the receiver's logs.
            ...(delivery.notification.requestId
              ? { "x-request-id": delivery.notification.requestId }
              : {}),
          },
          body,
          redirect: "manual",
          signal,
        });
      } catch (error) {
        const timedOut = (error as Error).name === "TimeoutError";
        return {
          kind: "retry",
          code: timedOut ? "TIMEOUT" : "NETWORK",
          reason: timedOut ? `no answer within ${timeoutMs} ms` : (error as Error).message,
        };
      }
      // The status decides; the body is never read, only released.
      try {
        await response.body?.cancel();
      } catch {
        // A body that broke off after the status line leaves nothing to release.
      }
      return classifyWebhook(response.status, response.headers, now());
    },
  };
}

/** The Standard Webhooks envelope Herald sends. */
function _payload(delivery: ClaimedDelivery, at: number) {
  const notification = delivery.notification;
  return {
    type: WEBHOOK_EVENT_TYPE,
    timestamp: new Date(at).toISOString(),
    data: {
      delivery_id: delivery.id,
      notification_id: notification.id,
      recipient_id: delivery.recipientId,
      title: notification.title,
      body: notification.body,
      image: notification.image,
      data: notification.data,
      category: notification.category,
      priority: notification.priority,
      created_at: notification.createdAt.toISOString(),
    },
  };
}

/** The endpoint's host with its port: the breaker of a delivery that names no endpoint. */
function _host(url: string): string {
  return URL.canParse(url) ? new URL(url).host : "invalid-url";
}
