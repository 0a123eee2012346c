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

/** The `@type` of the detail that carries FCM's own error code. */
const FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError";

/**
 * What each FCM error means for the delivery, keyed the way `firebase-admin`
 * reads an error (`messaging-errors-internal.ts`): the `errorCode` of the
 * FcmError detail, else the canonical `status`. Canonical statuses map as the
 * SDK maps them (`NOT_FOUND` is an unregistered token, `RESOURCE_EXHAUSTED` a
 * quota) with two deliberate differences: a bare `UNAUTHENTICATED` is Herald's
 * own access token being refused (retried with a fresh one), and a bare
 * `PERMISSION_DENIED` is an IAM problem of the project, so it never disables
 * the token (the SDK calls both "mismatched credential").
 */
const FCM_ERRORS: Record<string, (statusCode: number) => SendOutcome> = {
  UNREGISTERED: (statusCode) => ({
    kind: "permanent",
    code: "UNREGISTERED",
    statusCode,
    reason: "the token is no longer registered",
    disableTarget: true,
  }),
  NOT_FOUND: (statusCode) => FCM_ERRORS.UNREGISTERED(statusCode),
  SENDER_ID_MISMATCH: (statusCode) => ({
    kind: "permanent",
    code: "SENDER_ID_MISMATCH",
    statusCode,
    reason: "the token belongs to another sender",
    disableTarget: true,
  }),
  PERMISSION_DENIED: (statusCode) => ({
    kind: "permanent",
    code: "PERMISSION_DENIED",
    statusCode,
    reason: "the service account may not send with this Firebase project",
    disableTarget: false,
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
  APNS_AUTH_ERROR: (statusCode) => FCM_ERRORS.THIRD_PARTY_AUTH_ERROR(statusCode),
  QUOTA_EXCEEDED: (statusCode) => ({
    kind: "retry",
    code: "QUOTA_EXCEEDED",
    statusCode,
    reason: "sending quota exceeded",
    afterMs: QUOTA_WAIT_MS,
  }),
  RESOURCE_EXHAUSTED: (statusCode) => FCM_ERRORS.QUOTA_EXCEEDED(statusCode),
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
  UNAUTHENTICATED: (statusCode) => ({
    kind: "retry",
    code: "UNAUTHENTICATED",
    statusCode,
    reason: "access token refused",
  }),
};

/** Statuses whose meaning is clear without a body (a proxy's 429, an expired token's 401). */
const BARE_STATUS: Record<number, string> = { 401: "UNAUTHENTICATED", 429: "QUOTA_EXCEEDED" };

/** An `INVALID_ARGUMENT` about the token itself: the token is malformed, so it is disabled. */
const TOKEN_FIELD = /^message\.token$/;
const TOKEN_MESSAGE = /registration token/i;

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
  const error = _errorBody(body);
  if (status >= 200 && status < 300) {
    const name = (body as { name?: unknown } | undefined)?.name;
    return { kind: "sent", providerId: typeof name === "string" ? name : "", statusCode: status };
  }
  const details = Array.isArray(error?.details) ? error.details : [];
  // An errorCode newer than this table falls back to the canonical status.
  const candidates = [
    details.find((d) => d?.["@type"] === FCM_ERROR_TYPE)?.errorCode,
    error?.status,
    BARE_STATUS[status],
  ].filter((c): c is string => typeof c === "string");
  const known = candidates.find((c) => Object.hasOwn(FCM_ERRORS, c));
  const code = known ?? candidates[0];
  const outcome: SendOutcome = known ? FCM_ERRORS[known](status) : status >= 500
    ? {
      kind: "retry",
      code: code ?? `HTTP_${status}`,
      statusCode: status,
      reason: `FCM answered ${status}`,
    }
    : {
      kind: "permanent",
      code: code ?? `HTTP_${status}`,
      statusCode: status,
      reason: `FCM answered ${status}`,
      disableTarget: false,
    };
  if (outcome.kind === "permanent" && outcome.code === "INVALID_ARGUMENT" && _namesToken(error)) {
    outcome.code = "INVALID_REGISTRATION_TOKEN";
    outcome.reason = "the registration token is not valid";
    outcome.disableTarget = true;
  }
  if (outcome.kind === "retry") {
    const asked = retryAfterMs(headers.get("retry-after"), now);
    if (asked !== undefined) outcome.afterMs = Math.max(outcome.afterMs ?? 0, asked);
  }
  // FCM's own message says most; it replaces the generic reason rather than repeating it.
  if (outcome.kind !== "sent" && error?.message && !outcome.reason.includes(error.message)) {
    outcome.reason = known ? `${outcome.reason}: ${error.message}` : error.message;
  }
  return outcome;
}

interface FcmErrorBody {
  code?: number;
  message?: string;
  status?: string;
  details?: {
    "@type"?: string;
    errorCode?: string;
    fieldViolations?: { field?: string; description?: string }[];
  }[];
}

/** The `error` object of a body, when it is one. */
function _errorBody(body: unknown): FcmErrorBody | undefined {
  const error = (body as { error?: unknown } | undefined)?.error;
  if (typeof error !== "object" || error === null) return undefined;
  const e = error as FcmErrorBody;
  return {
    ...e,
    message: typeof e.message === "string" ? e.message : undefined,
    status: typeof e.status === "string" ? e.status : undefined,
  };
}

/** Whether an error's field violations or message are about the registration token. */
function _namesToken(error: FcmErrorBody | undefined): boolean {
  const violations = (error?.details ?? []).flatMap((d) =>
    Array.isArray(d?.fieldViolations) ? d.fieldViolations : []
  );
  return violations.some((v) =>
    TOKEN_FIELD.test(String(v?.field ?? "")) || TOKEN_MESSAGE.test(String(v?.description ?? ""))
  ) || TOKEN_MESSAGE.test(error?.message ?? "");
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
      // A refused or unreachable token endpoint, or a key that cannot sign, is
      // retried: the operator can fix the account, and the attempt cap bounds the wait.
      const misconfigured = (error as { misconfigured?: boolean }).misconfigured === true;
      return {
        kind: "retry",
        code: misconfigured ? "FCM_MISCONFIGURED" : "OAUTH",
        reason: (error as Error).message,
      };
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
    if (outcome.kind === "retry" && outcome.code === "UNAUTHENTICATED") options.tokens.invalidate();
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
