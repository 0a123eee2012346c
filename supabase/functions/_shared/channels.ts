/**
 * The channels Herald delivers on: the one list in TypeScript. SQL's one list
 * is `herald.channel_names()`; a test holds the two equal.
 *
 * Adding a channel touches this table, its provider under `providers/` (with
 * its wiring in `dispatch/dispatcher_deps.ts`), its target schema in
 * `notify/schemas.ts`, `herald.channel_names()` in a new migration, and their
 * tests — the README's "Adding a channel" says the same.
 *
 * @module
 */

/** Each channel, the kind of provider target its breaker guards, and what it delivers to. */
export const CHANNELS = {
  push: { breakerKind: "fcm", target: "device token" },
  email: { breakerKind: "email", target: "e-mail address" },
  webhook: { breakerKind: "webhook", target: "webhook endpoint" },
} as const satisfies Record<string, { breakerKind: string; target: string }>;

/** A channel Herald delivers on. */
export type Channel = keyof typeof CHANNELS;

/** The channels' names, in the table's order (a tuple, as `z.enum` wants). */
export const CHANNEL_NAMES = Object.keys(CHANNELS) as [Channel, ...Channel[]];

/** The kinds of provider target (`<kind>:<name>`) circuit breakers guard. */
export const BREAKER_KINDS: readonly string[] = [
  ...new Set(CHANNEL_NAMES.map((channel) => CHANNELS[channel].breakerKind)),
];
