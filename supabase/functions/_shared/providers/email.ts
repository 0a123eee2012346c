/**
 * E-mail through a Resend-compatible HTTP API: one `POST /emails` per delivery,
 * keyed by the delivery id, and the table that maps Resend's answers to
 * {@linkcode SendOutcome}s.
 *
 * @module
 */
import { requestSignal } from "../net/request_signal.ts";
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import { retryAfterMs, type SendOutcome } from "./outcome.ts";
import type { Provider } from "./provider.ts";

/**
 * The least wait after a daily or monthly quota refusal. The quota frees up only
 * as Resend's window moves on or the operator raises the plan; retrying on the
 * ordinary backoff would spend every attempt within minutes and dead-letter
 * mail that could still go out later the same day.
 */
export const QUOTA_WAIT_MS = 3_600_000;

/** Resend error `name`s whose meaning does not follow from the HTTP status alone. */
const RESEND_ERRORS: Record<string, (statusCode: number, said: string) => SendOutcome> = {
  rate_limit_exceeded: (statusCode, said) => ({
    kind: "retry",
    code: "rate_limit_exceeded",
    statusCode,
    reason: `Resend rate limit${said}`,
  }),
  daily_quota_exceeded: (statusCode, said) => ({
    kind: "retry",
    code: "daily_quota_exceeded",
    statusCode,
    reason: `Resend daily sending quota used up${said}`,
    afterMs: QUOTA_WAIT_MS,
  }),
  monthly_quota_exceeded: (statusCode, said) => ({
    kind: "retry",
    code: "monthly_quota_exceeded",
    statusCode,
    reason: `Resend monthly sending quota used up${said}`,
    afterMs: QUOTA_WAIT_MS,
  }),
  // Another attempt with this delivery id is still in flight at Resend (e.g. a
  // sender died mid-request and the lease expired). Asking again later gets that
  // attempt's answer, so this is safe to retry.
  concurrent_idempotent_requests: (statusCode, said) => ({
    kind: "retry",
    code: "concurrent_idempotent_requests",
    statusCode,
    reason: `an earlier attempt of this delivery is still in progress${said}`,
  }),
  // Resend already holds a request with this delivery id but another payload —
  // the content or `from` changed between attempts. That earlier request may
  // well have been sent; retrying cannot succeed within Resend's 24 hours and
  // a new key would risk a second e-mail, so the delivery fails.
  invalid_idempotent_request: (statusCode, said) => ({
    kind: "permanent",
    code: "invalid_idempotent_request",
    statusCode,
    reason: `an earlier attempt of this delivery had another payload and may have been sent${said}`,
    disableTarget: false,
  }),
};

/**
 * Maps one Resend `POST /emails` response to an outcome.
 *
 * | status | outcome |
 * | --- | --- |
 * | 2xx | sent, `providerId` = the e-mail `id` |
 * | 429 `rate_limit_exceeded` (or no name) | retry, `Retry-After` honoured |
 * | 429 `daily_quota_exceeded`, `monthly_quota_exceeded` | retry after at least {@linkcode QUOTA_WAIT_MS} |
 * | 409 `concurrent_idempotent_requests` | retry |
 * | 409 `invalid_idempotent_request` | permanent |
 * | 401, 403 (missing or invalid key, unverified domain) | retry: the operator must fix the account, and the attempt cap bounds the wait |
 * | 408, 5xx | retry |
 * | any other 4xx (400, 422 validation, …) | permanent, Resend's `name` as code and its message in the reason |
 *
 * Every retry waits at least what `Retry-After` asks; a 429's wait is the
 * account's (`throttled`), so the breaker holds every e-mail back for it.
 *
 * @param body the parsed JSON body (or undefined when it was not JSON)
 * @param now the time `Retry-After` dates are measured from
 */
export function classifyEmail(
  status: number,
  body: unknown,
  headers: Headers,
  now: number,
): SendOutcome {
  if (status >= 200 && status < 300) {
    const id = (body as { id?: unknown } | undefined)?.id;
    return { kind: "sent", providerId: typeof id === "string" ? id : "", statusCode: status };
  }
  const error = _errorBody(body);
  const name = error.name ?? (status === 429 ? "rate_limit_exceeded" : undefined);
  const said = error.message ? `: ${error.message}` : "";
  const code = name ?? `HTTP_${status}`;
  const outcome: SendOutcome = name && Object.hasOwn(RESEND_ERRORS, name)
    ? RESEND_ERRORS[name](status, said)
    : status === 401 || status === 403
    ? {
      kind: "retry",
      code,
      statusCode: status,
      reason: `Resend refused the account (check the API key and sending domain)${said}`,
    }
    : status === 408 || status >= 500
    ? { kind: "retry", code, statusCode: status, reason: `Resend answered ${status}${said}` }
    : {
      kind: "permanent",
      code,
      statusCode: status,
      reason: `Resend rejected the e-mail (${status})${said}`,
      disableTarget: false,
    };
  if (outcome.kind === "retry") {
    const asked = retryAfterMs(headers.get("retry-after"), now);
    if (asked !== undefined) outcome.afterMs = Math.max(outcome.afterMs ?? 0, asked);
    // Resend's rate limits and quotas are the account's: every e-mail waits.
    if (status === 429 && outcome.afterMs !== undefined) outcome.throttled = true;
  }
  return outcome;
}

/** Options for {@linkcode createEmailProvider}. */
export interface EmailProviderOptions {
  /** A Resend API key (`re_…`); sent only as the bearer token. */
  apiKey: string;
  /** The sender, `herald@example.com` or `Herald <herald@example.com>`. */
  from: string;
  /** @default "https://api.resend.com" */
  baseUrl?: string;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Clock for `Retry-After` dates. @default Date.now */
  now?: () => number;
  /** Time limit of one request, reading the answer included. @default 10_000 */
  timeoutMs?: number;
}

/**
 * Creates the e-mail provider. Each delivery is sent with its id as
 * `Idempotency-Key`, so a retry after a crash or a lost answer returns the
 * first e-mail's id instead of sending a second one (for Resend's 24 hours).
 * A delivery without a subject (no `overrides.email.subject`, no title) or
 * without content (no body, title or HTML) fails permanently as `EMPTY_EMAIL`
 * without a request.
 *
 * @throws {RangeError} when `apiKey` or `from` is empty, `baseUrl` is not an
 *   http(s) URL, or `timeoutMs` is not a positive integer
 *
 * @example
 * ```ts
 * const email = createEmailProvider({ apiKey: "re_123", from: "Herald <herald@example.com>" });
 * const outcome = await email.send(delivery);
 * ```
 */
export function createEmailProvider(options: EmailProviderOptions): Provider {
  if (!options.apiKey?.trim()) {
    throw new RangeError("Cannot create e-mail provider: 'apiKey' must not be empty");
  }
  if (!options.from?.trim()) {
    throw new RangeError("Cannot create e-mail provider: 'from' must not be empty");
  }
  const baseUrl = (options.baseUrl ?? "https://api.resend.com").replace(/\/+$/, "");
  const base = URL.canParse(baseUrl) ? new URL(baseUrl) : undefined;
  if (!base || (base.protocol !== "https:" && base.protocol !== "http:")) {
    throw new RangeError(
      `Cannot create e-mail provider: 'baseUrl' must be an http(s) URL, got ${
        JSON.stringify(options.baseUrl)
      }`,
    );
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(
      `Cannot create e-mail provider: 'timeoutMs' must be a positive integer, got ${timeoutMs}`,
    );
  }
  const { apiKey, from } = options;
  const url = `${baseUrl}/emails`;
  const target = `email:${base.host}`;
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;

  return {
    target: () => target,
    breakerScope: "provider",
    timeoutMs,

    async send(delivery, sendOptions) {
      const email = _email(delivery, from);
      if (typeof email === "string") {
        return { kind: "permanent", code: "EMPTY_EMAIL", reason: email, disableTarget: false };
      }
      let status: number;
      let headers: Headers;
      let text: string;
      try {
        const response = await doFetch(url, {
          method: "POST",
          headers: {
            authorization: `Bearer ${apiKey}`,
            "content-type": "application/json",
            "idempotency-key": delivery.id,
          },
          body: JSON.stringify(email),
          signal: requestSignal(timeoutMs, sendOptions?.signal),
        });
        ({ status, headers } = response);
        // Read under the same time limit: an answer cut off after a 2xx is
        // retried, and the idempotency key turns that retry into the first id.
        text = await response.text();
      } catch (error) {
        const timedOut = (error as Error).name === "TimeoutError";
        return {
          kind: "retry",
          code: timedOut ? "TIMEOUT" : "NETWORK",
          reason: timedOut
            ? `no answer within ${timeoutMs} ms`
            : _redact((error as Error).message, apiKey),
        };
      }
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      const outcome = classifyEmail(status, body, headers, now());
      if (outcome.kind !== "sent") outcome.reason = _redact(outcome.reason, apiKey);
      return outcome;
    },
  };
}

/** The `POST /emails` body Herald sends. */
interface ResendEmail {
  from: string;
  to: [string];
  subject: string;
  text?: string;
  html?: string;
  headers: Record<string, string>;
  tags?: [{ name: "category"; value: string }];
}

/**
 * Builds the e-mail for `delivery`, or says why there is none. Nothing that
 * changes between attempts may go in: Resend refuses a repeated
 * `Idempotency-Key` with another payload.
 */
function _email(delivery: ClaimedDelivery, from: string): ResendEmail | string {
  const { title, body, category, requestId, overrides } = delivery.notification;
  const subject = _nonBlank(overrides.email?.subject) ?? _nonBlank(title);
  const text = _nonBlank(body) ?? _nonBlank(title);
  const html = _nonBlank(overrides.email?.html);
  if (!subject) return "the e-mail has no subject: neither overrides.email.subject nor a title";
  if (!text && !html) return "the e-mail has no content: no body, title or overrides.email.html";
  const tag = category ? _tagValue(category) : undefined;
  return {
    from,
    to: [delivery.target],
    subject,
    ...(text ? { text } : {}),
    ...(html ? { html } : {}),
    headers: {
      "X-Herald-Delivery": delivery.id,
      ...(requestId ? { "X-Herald-Request-Id": requestId } : {}),
    },
    ...(tag ? { tags: [{ name: "category", value: tag }] } : {}),
  };
}

/**
 * `category` in Resend's tag alphabet (ASCII letters, digits, `_`, `-`; at most
 * 256): each run of other characters becomes `_`. A category with no letter or
 * digit left says nothing and is omitted.
 */
function _tagValue(category: string): string | undefined {
  const value = category.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 256);
  return /[A-Za-z0-9]/.test(value) ? value : undefined;
}

function _nonBlank(value: string | null | undefined): string | undefined {
  return value?.trim() ? value : undefined;
}

/** Resend's error body, `{ statusCode, name, message }`, with anything else ignored. */
function _errorBody(body: unknown): { name?: string; message?: string } {
  if (typeof body !== "object" || body === null) return {};
  const { name, message } = body as Record<string, unknown>;
  return {
    name: typeof name === "string" && name ? name : undefined,
    message: typeof message === "string" && message ? message : undefined,
  };
}

/** Reasons are stored and logged: the API key never appears in one. */
function _redact(reason: string, apiKey: string): string {
  return reason.replaceAll(apiKey, "[redacted]");
}
