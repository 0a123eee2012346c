/**
 * The notify function's request contract.
 *
 * @module
 */
import { z } from "zod";

/** FCM refuses these data keys (reserved words and prefixes). */
const RESERVED_DATA_KEY = /^(from|notification|message_type|collapse_key)$|^(google|gcm)\./;

/** A flat string map, as FCM's `data` must be. */
export const DataPayload = z.record(
  z.string().min(1).max(256).refine((key) => !RESERVED_DATA_KEY.test(key), {
    message: "is reserved by FCM (from, notification, message_type, collapse_key, google.*, gcm.*)",
  }),
  z.string().max(4096, "data values must be strings of at most 4096 characters"),
);

/** `POST /notify`: notify users on their devices. */
export const NotifyRequest = z.strictObject({
  user_ids: z.array(z.uuid()).min(1).max(1000),
  title: z.string().min(1).max(1024).optional(),
  body: z.string().min(1).max(4096).optional(),
  image: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  data: DataPayload.optional(),
  priority: z.enum(["normal", "high"]).default("normal"),
  /** Seconds the notification stays worth delivering (FCM's limit: 28 days). */
  ttl_seconds: z.number().int().min(0).max(2_419_200).optional(),
}).refine((n) => n.title || n.body || (n.data && Object.keys(n.data).length), {
  message: "a notification needs a title, a body or data",
  path: ["title"],
});

/** `PUT /notify/devices`: register or refresh the caller's device token. */
export const RegisterDevice = z.strictObject({
  token: z.string().min(1).max(4096).regex(
    /^[\x21-\x7e]+$/,
    "must be printable ASCII without spaces",
  ),
  platform: z.enum(["ios", "android", "web"]),
});

/** A path parameter that must be a UUID. */
export const IdParam = z.strictObject({ id: z.uuid() });
