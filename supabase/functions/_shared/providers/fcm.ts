/**
 * FCM HTTP v1: one `messages:send` per delivery, the table that maps FCM's
 * answers to {@linkcode SendOutcome}s, and token validation by dry run.
 *
 * @module
 */
import { requestSignal } from "../net/request_signal.ts";
import type { FcmMessage } from "./fcm_message.ts";
import type { AccessTokenSource } from "./google_access_token.ts";
import { retryAfterMs, type SendOutcome } from "./outcome.ts";

/** FCM's `QUOTA_EXCEEDED` means "back off for at least a minute". */
export const QUOTA_WAIT_MS = 60_000;

/** Error codes from FcmError details, and what each means for the delivery. */
const FCM_ERRORS: Record<string, (statusCode: number) => SendOutcome> = {
  UNREGISTERED: (statusCode) => ({
    kind: "permanent",
    code: "UNREGISTERED",
    statusCode,
    reason: "the token is no longer registered",
    disableTarget: true,
  }),
  SENDER_ID_MISMATCH: (statusCode) => ({
    kind: "permanent",
    code: "SENDER_ID_MISMATCH",
    statusCode,
    reason: "the token belongs to another sender",
    disableTarget: true,
  }),
  INVALID_ARGUMENT: (statusCode) => ({
    kind: "permanent",
    code: "INVALID_ARGUMENT",
    statusCode,
    reason: "FCM rejected the message as invalid",
    disableTarget: false,
  }),
  THIRD_PARTY_AUTH_ERROR: (statusCode) => ({
    kind: "permanent",
    code: "THIRD_PARTY_AUTH_ERROR",
    statusCode,
    reason: "APNs or Web Push credentials were rejected; check the Firebase project's settings",
    disableTarget: false,
  }),
  QUOTA_EXCEEDED: (statusCode) => ({
    kind: "retry",
    code: "QUOTA_EXCEEDED",
    statusCode,
    reason: "sending quota exceeded",
    afterMs: QUOTA_WAIT_MS,
  }),
  UNAVAILABLE: (statusCode) => ({
    kind: "retry",
    code: "UNAVAILABLE",
    statusCode,
    reason: "FCM is temporarily unavailable",
  }),
  INTERNAL: (statusCode) => ({
    kind: "retry",
    code: "INTERNAL",
    statusCode,
    reason: "FCM had an internal error",
  }),
};

/**
 * Maps one FCM HTTP v1 response to an outcome.
 *
 * @param body the parsed JSON body (or undefined when it was not JSON)
 */
export function classifyFcm(
  status: number,
  body: unknown,
  headers: Headers,
  now: number,
): SendOutcome {
  const error = (body as { error?: FcmErrorBody } | undefined)?.error;
  if (status >= 200 && status < 300) {
    const name = (body as { name?: unknown } | undefined)?.name;
    return { kind: "sent", providerId: typeof name === "string" ? name : "", statusCode: status };
  }
  const code = error?.details?.find((d) => d.errorCode)?.errorCode ??
    (status === 429 ? "QUOTA_EXCEEDED" : undefined);
  const outcome: SendOutcome = code && Object.hasOwn(FCM_ERRORS, code)
    ? FCM_ERRORS[code](status)
    : status === 401
    ? { kind: "retry", code: error?.status, statusCode: status, reason: "access token refused" }
    : status >= 500
    ? { kind: "retry", code: error?.status, statusCode: status, reason: `FCM answered ${status}` }
    : {
      kind: "permanent",
      code: error?.status ?? `HTTP_${status}`,
      statusCode: status,
      reason: error?.message ?? `FCM answered ${status}`,
      disableTarget: false,
    };
  if (outcome.kind === "retry") {
    const asked = retryAfterMs(headers.get("retry-after"), now);
    if (asked !== undefined) outcome.afterMs = Math.max(outcome.afterMs ?? 0, asked);
  }
  if (outcome.kind === "permanent" && error?.message) {
    outcome.reason = `${outcome.reason}: ${error.message}`;
  }
  return outcome;
}

interface FcmErrorBody {
  code?: number;
  message?: string;
  status?: string;
  details?: { "@type"?: string; errorCode?: string }[];
}

/** Options for {@linkcode createFcmSender}. */
export interface FcmSenderOptions {
  projectId: string;
  tokens: AccessTokenSource;
  /** @default "https://fcm.googleapis.com" */
  baseUrl?: string;
  fetch?: typeof fetch;
  now?: () => number;
  /** Per-request timeout. @default 10_000 */
  timeoutMs?: number;
}

/**
 * Sends one message; never throws for provider or network trouble. With
 * `validateOnly` FCM checks the message and its token (`validate_only: true`)
 * and answers as for a send, without delivering anything.
 */
export type FcmSender = (
  message: FcmMessage,
  options?: { validateOnly?: boolean; signal?: AbortSignal },
) => Promise<SendOutcome>;

/**
 * Creates a sender for one Firebase project.
 *
 * @example
 * ```ts
 * const send = createFcmSender({ projectId, tokens });
 * const outcome = await send({ token, notification: { title: "Hi" } });
 * ```
 */
export function createFcmSender(options: FcmSenderOptions): FcmSender {
  const url = `${options.baseUrl ?? "https://fcm.googleapis.com"}/v1/projects/${
    encodeURIComponent(options.projectId)
  }/messages:send`;
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? 10_000;

  return async (message, sendOptions) => {
    let bearer: string;
    try {
      bearer = await options.tokens.token();
    } catch (error) {
      // A refused or unreachable token endpoint is retried: the operator can fix the
      // account, and the attempt cap still bounds the wait.
      return { kind: "retry", code: "OAUTH", reason: (error as Error).message };
    }
    let response: Response;
    try {
      response = await doFetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
        body: JSON.stringify({
          message,
          ...(sendOptions?.validateOnly ? { validate_only: true } : {}),
        }),
        signal: requestSignal(timeoutMs, sendOptions?.signal),
      });
    } catch (error) {
      const timedOut = (error as Error).name === "TimeoutError";
      return {
        kind: "retry",
        code: timedOut ? "TIMEOUT" : "NETWORK",
        reason: timedOut ? `no answer within ${timeoutMs} ms` : (error as Error).message,
      };
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    const outcome = classifyFcm(response.status, body, response.headers, now());
    if (response.status === 401 && outcome.kind === "retry") options.tokens.invalidate();
    return outcome;
  };
}

/** What a dry run says about a device token. */
export type TokenCheck =
  | { kind: "valid" }
  /** FCM refused the token: unregistered, another sender's, or malformed. */
  | { kind: "invalid"; code: string; reason: string }
  /** FCM could not tell (network, quota, credentials); `outcome` says why. */
  | { kind: "unknown"; outcome: SendOutcome };

/**
 * Asks FCM whether `token` can receive messages, without delivering one: a
 * `validate_only` send of a message that carries nothing but the token.
 * Because the message has no other field, an `INVALID_ARGUMENT` answer can only
 * be about the token. Use it when a device registers or to sweep stale tokens.
 *
 * @example
 * ```ts
 * const check = await validateToken(send, token);
 * if (check.kind === "invalid") await disableToken(token, check.code);
 * ```
 */
export async function validateToken(sender: FcmSender, token: string): Promise<TokenCheck> {
  const outcome = await sender({ token }, { validateOnly: true });
  if (outcome.kind === "sent") return { kind: "valid" };
  if (
    outcome.kind === "permanent" && (outcome.disableTarget || outcome.code === "INVALID_ARGUMENT")
  ) {
    return { kind: "invalid", code: outcome.code ?? "INVALID_ARGUMENT", reason: outcome.reason };
  }
  return { kind: "unknown", outcome };
}
