/**
 * What the notify function answers on success, as zod schemas: the routes
 * type their bodies with them (`satisfies Answer<typeof X>`, `_shared/http/openapi.ts`) and the OpenAPI
 * document publishes them, so the contract and the code are one text. A test
 * holds live answers to them.
 *
 * @module
 */
import { z } from "zod";
import { Uuid } from "../_shared/db/uuid.ts";
import { Timestamp } from "../_shared/http/openapi.ts";
import { Channel, Platform } from "./schemas.ts";

const Id = Uuid;
const DeliveryStatus = z.enum([
  "pending",
  "sent",
  "failed",
  "expired",
  "cancelled",
  "dead",
]);

/** POST /notify, POST /bulk: what was accepted (202), and after an inline attempt (201). */
export const Accepted = z.object({
  id: Id.describe("The notification's id"),
  status_url: z.string().regex(/^\/functions\/v1\//).describe(
    "Where its status is read: a path on the host called (also the Location header)",
  ),
  deliveries: z.number().int().describe("Deliveries created"),
  denied: z.array(Id).describe("Recipients herald.can_notify refused"),
  denied_count: z.number().int(),
});

/** One delivery as the inline attempt left it. */
export const InlineResult = z.object({
  id: Id,
  recipient_id: Id.nullable().describe("Null for raw targets"),
  channel: Channel,
  platform: Platform.nullable(),
  status: z.enum([...DeliveryStatus.options, "sending"]).describe(
    "`sending`: still in flight when the inline budget ran out",
  ),
  last_error: z.string().nullable(),
  next_attempt_at: Timestamp.nullable().describe(
    "When a pending delivery is tried again",
  ),
});

export const AttemptedInline = Accepted.extend({
  results: z.array(InlineResult),
});

export const BulkProgress = z.object({
  id: Id,
  audience: z.record(z.string(), z.unknown()).describe(
    "Who was asked for: user ids counted, or the topic",
  ),
  created_at: Timestamp,
  send_at: Timestamp.nullable(),
  total: z.number().int(),
  counts: z.object({
    pending: z.number().int(),
    sent: z.number().int(),
    failed: z.number().int(),
    expired: z.number().int(),
    cancelled: z.number().int(),
    dead: z.number().int(),
  }),
  done: z.boolean().describe("Nothing pending"),
});

const Attempt = z.object({
  attempt: z.number().int(),
  at: Timestamp,
  outcome: z.string(),
  status_code: z.number().int().nullable(),
  error_code: z.string().nullable(),
  error: z.string().nullable(),
  latency_ms: z.number().int().nullable(),
  request_id: z.string().nullable(),
});

export const Notification = z.object({
  id: Id,
  sender_id: Id.nullable().describe("The user who sent it; null for services"),
  title: z.string().nullable(),
  body: z.string().nullable(),
  image: z.string().nullable(),
  data: z.record(z.string(), z.string()),
  category: z.string().nullable(),
  priority: z.enum(["normal", "high"]),
  critical: z.boolean(),
  overrides: z.record(z.string(), z.unknown()),
  send_at: Timestamp.nullable(),
  expires_at: Timestamp.nullable(),
  audience: z.record(z.string(), z.unknown()),
  request_id: z.string().nullable(),
  created_at: Timestamp,
  delivery_count: z.number().int(),
  deliveries: z.array(z.object({
    id: Id,
    recipient_id: Id.nullable(),
    channel: Channel,
    platform: Platform.nullable(),
    status: DeliveryStatus,
    attempts: z.number().int(),
    next_attempt_at: Timestamp.nullable(),
    last_error: z.string().nullable(),
    provider_message_id: z.string().nullable(),
    sent_at: Timestamp.nullable(),
    attempt_log: z.array(Attempt),
  })).describe(
    "The first 1,000, oldest first; the caller's own when a recipient asks",
  ),
});

export const Cancelled = z.object({
  id: Id,
  cancelled: z.number().int().describe("Deliveries cancelled"),
});

export const Device = z.object({
  id: Id,
  token: z.string(),
  platform: Platform,
  created_at: Timestamp,
  last_seen_at: Timestamp,
  disabled_at: Timestamp.nullable(),
  disabled_reason: z.string().nullable(),
});

export const Devices = z.object({ devices: z.array(Device) });

export const Topics = z.object({
  topics: z.array(z.object({ topic: z.string(), created_at: Timestamp })),
});

export const Subscription = z.object({
  topic: z.string(),
  user_id: Id,
  created_at: Timestamp,
});

export const StoredPreferences = z.object({
  time_zone: z.string(),
  quiet_hours: z.object({ start: z.string(), end: z.string() }).nullable(),
  opt_outs: z.array(z.object({ category: z.string(), channel: Channel })),
});

export const WebhookEndpoint = z.object({
  id: Id,
  url: z.url(),
  created_at: Timestamp,
  disabled_at: Timestamp.nullable(),
  disabled_reason: z.string().nullable(),
});

export const WebhookEndpoints = z.object({
  webhook_endpoints: z.array(WebhookEndpoint),
});

export const WebhookEndpointWithSecret = WebhookEndpoint.extend({
  secret: z.string().describe("`whsec_…`: shown only now"),
});

export const RotatedWebhookEndpoint = WebhookEndpointWithSecret.extend({
  previous_secret_expires_at: Timestamp.describe(
    "Until then the old secret signs too",
  ),
});
