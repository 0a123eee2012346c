/**
 * The `push` channel's {@linkcode Provider}: FCM HTTP v1 for Android, iOS
 * (through APNs) and the web, one Firebase project per provider.
 *
 * @module
 */
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import type { FcmSender } from "./fcm.ts";
import { buildFcmMessage } from "./fcm_message.ts";
import type { SendOutcome } from "./outcome.ts";
import type { Provider } from "./provider.ts";

/** Options for {@linkcode createPushProvider}. */
export interface PushProviderOptions {
  /** The Firebase project; names the breaker target `fcm:<projectId>`. */
  projectId: string;
  /** Sends to the same project: `createFcmSender({ projectId, tokens, baseUrl })`. */
  sender: FcmSender;
  /** Clock for the remaining time to live. @default Date.now */
  now?: () => number;
  /**
   * The longest one send may take: an access-token refresh and the request,
   * each bounded by the sender's 10 s timeout. @default 20_000
   */
  timeoutMs?: number;
}

/**
 * Creates the push provider: builds each delivery's FCM message and sends it.
 * Content FCM would refuse (reserved data keys, invalid overrides, more than
 * 4096 bytes of payload) fails permanently as `INVALID_DATA` /
 * `PAYLOAD_TOO_LARGE` without a request, and without disabling the device
 * token — the token is not at fault.
 *
 * @example
 * ```ts
 * const projectId = serviceAccount.project_id;
 * const tokens = createAccessTokenSource({ serviceAccount });
 * const sender = createFcmSender({ projectId, tokens, baseUrl: config.fcm.apiUrl });
 * const providers = { push: createPushProvider({ projectId, sender }) };
 * ```
 */
export function createPushProvider(options: PushProviderOptions): Provider {
  const target = `fcm:${options.projectId}`;
  const now = options.now ?? Date.now;
  return {
    target: () => target,
    breakerScope: "provider",
    timeoutMs: options.timeoutMs ?? 20_000,
    send(delivery: ClaimedDelivery, sendOptions?: { signal?: AbortSignal }): Promise<SendOutcome> {
      const built = buildFcmMessage(delivery, now());
      if (!built.ok) {
        return Promise.resolve({
          kind: "permanent",
          code: built.code,
          reason: built.reason,
          disableTarget: false,
        });
      }
      return options.sender(built.message, {
        signal: sendOptions?.signal,
        validateOnly: delivery.notification.validateOnly === true,
      });
    },
  };
}
