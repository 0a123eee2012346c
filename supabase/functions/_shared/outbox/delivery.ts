/**
 * A delivery as the dispatcher sees it after claiming it from the outbox.
 *
 * @module
 */

/** The notification content a delivery carries. */
export interface NotificationContent {
  id: string;
  title: string | null;
  body: string | null;
  image: string | null;
  data: Record<string, string>;
  priority: "normal" | "high";
  overrides: {
    android?: Record<string, unknown>;
    apns?: Record<string, unknown>;
    webpush?: Record<string, unknown>;
  };
  expiresAt: Date | null;
}

/** A claimed delivery; `lease` fences the write-back against a later claimant. */
export interface ClaimedDelivery {
  id: string;
  /** Attempts including this one. */
  attempt: number;
  channel: "push" | "email" | "webhook";
  target: string;
  platform: "ios" | "android" | "web" | null;
  /** The device token was disabled after this delivery was enqueued. */
  targetDisabled: boolean;
  /** Opaque: the exact `locked_until` this claim set (text keeps its microseconds). */
  lease: string;
  notification: NotificationContent;
}
