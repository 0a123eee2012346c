/**
 * A delivery as the dispatcher sees it after claiming it from the outbox.
 *
 * @module
 */
import type { Channel } from "../channels.ts";

/** Per-channel additions to a notification. FCM blocks are `AndroidConfig`, `ApnsConfig`, `WebpushConfig` subsets. */
export interface Overrides {
  android?: Record<string, unknown>;
  apns?: Record<string, unknown>;
  webpush?: Record<string, unknown>;
  /** `fcm_options.analytics_label` of the FCM message. */
  analytics_label?: string;
  /** E-mail: subject (default: the title) and HTML body (the body is the text part). */
  email?: { subject?: string; html?: string };
}

/** The notification content a delivery carries. */
export interface NotificationContent {
  id: string;
  title: string | null;
  body: string | null;
  image: string | null;
  data: Record<string, string>;
  category: string | null;
  priority: "normal" | "high";
  overrides: Overrides;
  expiresAt: Date | null;
  /** `ttl_seconds: 0`: one attempt as soon as it is due, never a retry (FCM's TTL `"0s"`). */
  nowOrNever?: boolean;
  /** FCM checks the message and token and delivers nothing (`validate_only`); push only. */
  validateOnly?: boolean;
  createdAt: Date;
  /** The correlation id of the request that asked for it. */
  requestId: string | null;
}

/** A claimed delivery; `lease` fences the write-back against a later claimant. */
export interface ClaimedDelivery {
  id: string;
  /**
   * Its `created_at` as text (exact to the microsecond): the partition key,
   * which the write-back needs with the id to find the row in one partition.
   */
  createdAt: string;
  /** Attempts including this one. */
  attempt: number;
  channel: Channel;
  /** FCM token, e-mail address or webhook URL. */
  target: string;
  platform: "ios" | "android" | "web" | null;
  recipientId: string | null;
  /** Webhook deliveries: the endpoint (its circuit breaker is its own). */
  webhookEndpointId: string | null;
  /** The device token or webhook endpoint was disabled after this delivery was enqueued. */
  targetDisabled: boolean;
  /** Webhook deliveries: signing secrets (`whsec_…`), newest first; two during a rotation. */
  secrets: string[];
  /** Opaque: the exact `locked_until` this claim set (text keeps its microseconds). */
  lease: string;
  notification: NotificationContent;
}
