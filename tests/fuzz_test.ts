/**
 * Property-based fuzzing of every public endpoint through the live gateway:
 * each operation of the notify function's served OpenAPI document (so new
 * ones are covered without touching this file), the hooks function's signed
 * inbound events, health and readiness, and the dead-letter listing. A few
 * thousand generated requests — arbitrary JSON, mutations of valid bodies,
 * odd path parameters, query strings and headers — sent as users, as the
 * service role and as nobody in particular.
 *
 * Every answer must be below 500 (a 503 only where the contract names one),
 * carry `x-request-id`, and, when an error, be `application/problem+json`
 * with `type`, `status` and `request_id`. Every notification an answer
 * accepted must exist afterwards with exactly the deliveries it announced.
 *
 * The corpus comes from `fc.sample` with a seed printed at the start; set
 * HERALD_FUZZ_SEED to replay a run.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type postgres from "postgres";
import { LOCAL_HOOK_SECRET } from "../scripts/stack/config.ts";
import {
  adminSql,
  createUser,
  functionsUrl,
  stack,
  type TestUser,
  userToken,
} from "./support/stack.ts";

// The functions' own contract: Kong would stop some of this input first (tests/kong/).
const API = functionsUrl;
const SEED = Number(Deno.env.get("HERALD_FUZZ_SEED") ?? Date.now() % 2 ** 31);
const IN_FLIGHT = 16;
const REQUEST_TIMEOUT_MS = 30_000;
const PROBLEM_TYPE = /^https:\/\/herald\.dev\/problems\/[a-z0-9-]+$/;
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Requests per documented notify operation; the rest get DEFAULT_SHARE. */
const SHARE: Record<string, number> = {
  "POST /notify": 1400,
  "POST /notify/bulk": 400,
  "PUT /notify/devices": 150,
  "PUT /notify/preferences": 200,
  "POST /notify/webhook-endpoints": 120,
};
const DEFAULT_SHARE = 80;
const HOOK_REQUESTS = 400;
const HEALTH_REQUESTS = 200;
const DEAD_LETTER_REQUESTS = 300;
const WRONG_METHOD_REQUESTS = 60;
const OVERRIDE_REQUESTS = 150;
const INVALID_UTF8_REQUESTS = 120;

/** Who a generated request is sent as. */
type Auth =
  | { kind: "user"; user: TestUser }
  | { kind: "service" }
  | { kind: "odd"; label: string; header?: string; userId?: string };

/** A generated request before its correlation id, signature and credentials are filled in. */
interface Draft {
  /** What it exercises, for the summary: `POST /notify`, `GET /health/ready`, … */
  family: string;
  method: string;
  /** Under /functions/v1, already encoded, without the query. */
  path: string;
  query?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer>;
  auth?: Auth;
  /** `mine`: a fresh sane id the answer must echo; `none`; or a value the function must not echo. */
  requestId: "mine" | "none" | { garbage: string } | { traceparent: string };
  /** Inbound events: how the Standard Webhooks headers are made at send time. */
  hook?: { kind: "signed" | "wrong-secret" | "stale"; id: string };
  /** The only statuses this request may get, when the contract is that narrow (may include a 503). */
  only?: readonly number[];
}

/** A request as sent. */
interface Sent {
  draft: Draft;
  url: string;
  init: {
    method: string;
    headers: Record<string, string>;
    body?: string | Uint8Array<ArrayBuffer>;
  };
  requestId?: string;
}

/** An answer as received. */
interface Answer {
  status: number;
  headers: Headers;
  text: string;
  ms: number;
}

interface Failure {
  reason: string;
  sent: Sent;
  answer?: Answer;
}

/** A notification some answer accepted. */
interface Accepted {
  id: string;
  deliveries: number;
  sent: Sent;
  answer: Answer;
}

// ── Values ─────────────────────────────────────────────────────────────────

const ODD_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udfffy",
  "\u202eevil",
  "\ufeff",
  "\r\n",
  "😀".repeat(300),
  "Ω≈ç√∫˜µ≤≥÷",
  "' or 1=1 --",
  "${{7*7}}",
  "{{record.id}}",
  "<script>alert(1)</script>",
  "null",
  "%00",
];

/** Strings a schema may or may not take: binary and grapheme unicode, the classics above, big ones. */
const oddString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 3, arbitrary: fc.constantFrom(...ODD_STRINGS) },
  { weight: 1, arbitrary: fc.constantFrom(1025, 4097, 70_000).map((n) => "x".repeat(n)) },
);

/** `depth` nested arrays as JSON text, deeper than JSON.stringify could write. */
function deepJson(depth: number): string {
  return `${"[".repeat(depth)}"deep"${"]".repeat(depth)}`;
}

function deeplyNested(depth: number): unknown {
  let value: unknown = "deep";
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
}

/** Odd strings short enough for a URL (clients refuse URLs over 64 KiB). */
const oddUrlString = oddString.filter((text) => text.length <= 4096);

/** Any value in a wrong place: other types, nulls, nesting, huge and odd strings. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  oddString,
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
  fc.constantFrom(5, 500).map(deeplyNested),
  fc.constant({}),
  fc.constant([]),
);

const ODD_TIMES = [
  "2024-01-01",
  "2024-01-01T00:00:00",
  "0000-01-01T00:00:00Z",
  "0000-12-31T23:59:59-01:00",
  "0001-01-01T00:00:00+14:00",
  "9999-12-31T23:59:59Z",
  "2024-02-30T00:00:00Z",
  "2023-02-29T00:00:00Z",
  "2024-02-29T12:00:00+14:00",
  "2024-01-01T24:00:00Z",
  "2024-01-01T00:00:60Z",
  "2024-01-01T00:00:00.123456789Z",
  "2024-01-01t00:00:00z",
  "2024-01-01T00:00:00+2400",
  "2024-01-01T00:00:00-00:00",
  "+275760-09-13T00:00:00.000Z",
  "1970-01-01T00:00:00Z",
  "1969-12-31T23:59:59.999Z",
  "now",
  "tomorrow",
  "1700000000",
];

/** Timestamps: in and out of `date-time`, past and future, at and beyond the limits. */
const oddTime: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ODD_TIMES) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(-86_400_000, 60_000, 29 * 86_400_000, 31 * 86_400_000)
      .map((ms) => new Date(Date.now() + ms).toISOString()),
  },
  { weight: 1, arbitrary: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: oddValue },
);

const ODD_IDS = [
  "not-a-uuid",
  "00000000-0000-0000-0000-000000000000",
  "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "00000000-0000-0000-0000-00000000000g",
  "{6f1c7a54-4b1e-4c3a-9d0f-2b6a8e1d4c55}",
  "6f1c7a544b1e4c3a9d0f2b6a8e1d4c55",
  "",
  null,
  42,
];

const oddUuid: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...ODD_IDS),
  fc.uuid().map((id) => id.toUpperCase()),
  fc.uuid().map((id) => ` ${id}`),
  oddString,
);

/** Odd ids as query parameter values. */
const oddUuidInUrl: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...ODD_IDS).map(String),
  fc.uuid().map((id) => id.toUpperCase()),
  fc.uuid().map((id) => ` ${id}`),
  oddUrlString,
);

/** Percent-encodes a string; lone surrogates become U+FFFD (raw ones are in the constants). */
function encodeSegment(text: string): string {
  return encodeURIComponent(text.toWellFormed());
}

/** Path segments, already encoded where they must be. */
const oddSegment: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "not-a-uuid",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f",
    "..",
    ".",
    "%00",
    "%ZZ",
    "%E0%A4%A",
    "%ED%A0%80",
    "%F0%9F%98%80",
    "00000000-0000-0000-0000-000000000000",
    "null",
    "%20",
    "a;b",
    "%3F%23",
    "'%20or%201=1--",
  ),
  fc.uuid().map((id) => id.toUpperCase()),
  fc.uuid().map((id) => `${id}/extra`),
  oddUrlString.map(encodeSegment),
  fc.constantFrom(300, 7000).map((n) => "a".repeat(n)),
);

const garbageQuery: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constant("") },
  {
    weight: 2,
    arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), {
      maxKeys: 3,
    }).map((d) => `?${new URLSearchParams(d)}`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "?",
      "?&&",
      "?=",
      "?a",
      "?a=1&a=2",
      "?%ZZ=%ZZ",
      "?user_id=%00",
      "?__proto__=1",
      `?${"a=1&".repeat(500)}`,
    ),
  },
  { weight: 1, arbitrary: oddUrlString.map((s) => `?q=${encodeSegment(s)}`) },
);

const CONTENT_TYPES = [
  "application/json; charset=utf-8",
  "APPLICATION/JSON",
  "application/vnd.api+json",
  "application/problem+json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/jsonx",
  "application/json;;;",
  "",
];

/** Mostly JSON; sometimes another type, or none. */
const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 16, arbitrary: fc.constant("application/json") },
  { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const requestIdMode: fc.Arbitrary<Draft["requestId"]> = fc.oneof(
  { weight: 17, arbitrary: fc.constant("mine" as const) },
  { weight: 1, arbitrary: fc.constant("none" as const) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("has space", "x".repeat(200), "é", "<id>", "a/b")
      .map((garbage) => ({ garbage })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "garbage",
    ).map((traceparent) => ({ traceparent })),
  },
);

/** Serialises a generated body; `fc.anything()` may give `undefined`, sent as the word. */
function serialise(value: unknown): string {
  return JSON.stringify(value) ?? "undefined";
}

/** Sets a key as an own property, even `__proto__`. */
function setField(body: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(body, key, { value, enumerable: true, writable: true, configurable: true });
}

type Mutation = (body: Record<string, unknown>) => void;

/** Drop a field, put anything in any field, or put a field's own odd values in it. */
function mutations(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Mutation> {
  const names = Object.keys(fields);
  return fc.oneof(
    fc.constantFrom(...names).map((name): Mutation => (body) => delete body[name]),
    fc.tuple(fc.constantFrom(...names, "__unknown_field", "__proto__", "constructor"), oddValue)
      .map(([name, value]): Mutation => (body) => setField(body, name, value)),
    ...names.map((name) =>
      fields[name].map((value): Mutation => (body) => setField(body, name, value))
    ),
  );
}

/** A valid body (weight 4), one mutated 1–3 times (6), arbitrary JSON (1), anything (1), not JSON (1). */
function bodies(
  valid: fc.Arbitrary<Record<string, unknown>>,
  fields: Record<string, fc.Arbitrary<unknown>>,
): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: valid.map(serialise) },
    {
      weight: 6,
      arbitrary: fc.tuple(valid, fc.array(mutations(fields), { minLength: 1, maxLength: 3 }))
        .map(([body, changes]) => {
          for (const change of changes) change(body);
          return serialise(body);
        }),
    },
    { weight: 1, arbitrary: fc.jsonValue().map(serialise) },
    { weight: 1, arbitrary: fc.anything().map(serialise) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        { weight: 6, arbitrary: fc.string({ maxLength: 50 }) },
        {
          weight: 3,
          arbitrary: fc.constantFrom("{", '{"title":', "[1,2", "{}}", "\u0000", "null"),
        },
        { weight: 1, arbitrary: fc.constant(`{"title":"${"x".repeat(1_100_000)}"}`) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            deepJson(50_000),
            `{"title":"deep","data":${deepJson(30_000)}}`,
          ),
        },
      ),
    },
  );
}

// ── The world the requests are made in ─────────────────────────────────────

interface World {
  callers: TestUser[];
  recipients: TestUser[];
  topic: string;
  odd: Auth[];
}

async function makeWorld(sql: postgres.Sql): Promise<World> {
  const callers: TestUser[] = [];
  const recipients: TestUser[] = [];
  for (let i = 0; i < 32; i++) callers.push(await createUser(sql, `fuzz-caller${i}`));
  for (let i = 0; i < 12; i++) recipients.push(await createUser(sql, `fuzz-recipient${i}`));
  const devices = [
    ...callers.map((u, i) => ({ user_id: u.id, token: `fuzz-${SEED}-c${i}`, platform: "android" })),
    ...recipients.flatMap((u, i) => [
      { user_id: u.id, token: `fuzz-${SEED}-r${i}a`, platform: "ios" },
      ...(i % 2 ? [{ user_id: u.id, token: `fuzz-${SEED}-r${i}b`, platform: "web" }] : []),
    ]),
  ];
  await sql`insert into herald.device_tokens ${sql(devices)}`;
  const topic = `fuzz-${SEED}-topic`;
  await sql`insert into herald.topic_subscriptions ${
    sql(recipients.slice(0, 6).map((u) => ({ topic, user_id: u.id })))
  }`;
  const ghost = crypto.randomUUID();
  const someone = callers[0];
  const odd: Auth[] = [
    { kind: "odd", label: "none" },
    { kind: "odd", label: "empty", header: "" },
    { kind: "odd", label: "bare Bearer", header: "Bearer" },
    { kind: "odd", label: "lower-case bearer", header: `bearer ${someone.token}` },
    { kind: "odd", label: "two tokens", header: `Bearer ${someone.token} ${someone.token}` },
    { kind: "odd", label: "Basic", header: "Basic dXNlcjpwYXNz" },
    { kind: "odd", label: "anon key", header: `Bearer ${stack.anonKey}` },
    { kind: "odd", label: "service key + x", header: `Bearer ${stack.serviceRoleKey}x` },
    { kind: "odd", label: "not a JWT", header: "Bearer a.b.c" },
    { kind: "odd", label: "huge", header: `Bearer ${"x".repeat(6000)}` },
    {
      kind: "odd",
      label: "expired",
      header: `Bearer ${await userToken(someone.id, { expiresIn: "-1h" })}`,
    },
    {
      kind: "odd",
      label: "ES256 user",
      header: `Bearer ${await userToken(someone.id, { alg: "ES256" })}`,
      userId: someone.id,
    },
    {
      kind: "odd",
      label: "valid token of a user who does not exist",
      header: `Bearer ${await userToken(ghost)}`,
      userId: ghost,
    },
  ];
  return { callers, recipients, topic, odd };
}

function authLabel(auth: Auth | undefined): string {
  return !auth ? "no credentials" : auth.kind === "odd" ? auth.label : auth.kind;
}

function authHeader(auth: Auth | undefined): string | undefined {
  if (!auth) return undefined;
  if (auth.kind === "user") return `Bearer ${auth.user.token}`;
  if (auth.kind === "service") return `Bearer ${stack.serviceRoleKey}`;
  return auth.header;
}

/** Users (9), the service role (7), odd credentials (2). */
function auths(world: World): fc.Arbitrary<Auth> {
  return fc.oneof(
    {
      weight: 9,
      arbitrary: fc.constantFrom(...world.callers).map((user): Auth => ({ kind: "user", user })),
    },
    { weight: 7, arbitrary: fc.constant<Auth>({ kind: "service" }) },
    { weight: 2, arbitrary: fc.constantFrom(...world.odd) },
  );
}

/** The user id a caller would name as itself, if any. */
function selfOf(auth: Auth): string | undefined {
  return auth.kind === "user" ? auth.user.id : auth.kind === "odd" ? auth.userId : undefined;
}

// ── Bodies per operation ───────────────────────────────────────────────────

const dataKey = fc.stringMatching(/^[a-z][a-z0-9_]{0,15}$/);
const title = fc.oneof(
  { weight: 8, arbitrary: fc.string({ minLength: 1, maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }) },
  { weight: 1, arbitrary: fc.constantFrom("Order shipped 📦", "مرحبا", "a\u0000b", "\ud800") },
);

/** What a notification says, valid per the schema. */
function content() {
  return {
    title,
    body: fc.string({ minLength: 1, maxLength: 200 }),
    image: fc.constantFrom("https://img.example.invalid/a.png", "http://img.example.invalid/b"),
    data: fc.dictionary(dataKey, fc.string({ maxLength: 50 }), { maxKeys: 4 }),
    channels: fc.subarray(["push", "email", "webhook"], { minLength: 1 }),
    overrides: fc.constantFrom(
      { android: { priority: "high", ttl: "3600s", notification: { color: "#ff0000" } } },
      { apns: { headers: { "apns-priority": "10" }, payload: { aps: { badge: 1 } } } },
      { webpush: { headers: { Urgency: "high", TTL: 60 } }, analytics_label: "fuzz" },
      { email: { subject: "Fuzz" } },
    ),
    category: fc.constantFrom("orders", "news", "a.b-c_d"),
    priority: fc.constantFrom("normal", "high"),
    critical: fc.boolean(),
    ttl_seconds: fc.integer({ min: 0, max: 2_419_200 }),
    send_at: fc.constantFrom(-3_600_000, 0, 120_000, 29 * 86_400_000)
      .map((ms) => new Date(Date.now() + ms).toISOString()),
  };
}

/** Odd values for the content fields. */
const CONTENT_ODDITIES: Record<string, fc.Arbitrary<unknown>> = {
  title: oddString,
  body: oddString,
  image: fc.constantFrom(
    "ftp://img.example.invalid/a.png",
    "javascript:alert(1)",
    "HTTPS://IMG.EXAMPLE.INVALID/A.PNG",
    "https://",
    `https://img.example.invalid/${"a".repeat(2100)}`,
    "/relative.png",
  ),
  data: fc.oneof(
    fc.dictionary(fc.string({ maxLength: 300 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 4 }),
    fc.dictionary(oddString, oddString, { maxKeys: 3 }),
    fc.constantFrom(
      { from: "x" },
      { "google.x": "y" },
      { n: 1 },
      { n: null },
      { "": "empty key" },
      { big: "x".repeat(4097) },
    ),
    oddValue,
  ),
  channels: fc.oneof(
    fc.constantFrom([], ["push", "push"], ["sms"], ["PUSH"], "push", [null], [
      "push",
      "email",
      "webhook",
      "push",
    ]),
    oddValue,
  ),
  overrides: fc.oneof(
    fc.constantFrom(
      { android: { ttl: "1.5s" } },
      { android: { ttl: "9999999999s" } },
      { android: { ttl: -1 } },
      { android: { notification: { color: "red" } } },
      { apns: { headers: { "apns-collapse-id": "é".repeat(40) } } },
      { apns: { payload: { aps: { alert: { title: "\u0000" } } } } },
      { webpush: { fcm_options: { link: "http://insecure.example.invalid" } } },
      { webpush: { headers: { TTL: "99999999999999999999" } } },
      { email: { html: "" } },
      { email: { subject: "a\u0000b" } },
      { fcm: { anything: true } },
      { analytics_label: "has space" },
    ),
    oddValue,
  ),
  category: fc.oneof(fc.constantFrom("UPPER", "", "a".repeat(65), "*", "-lead"), oddString),
  priority: fc.oneof(fc.constantFrom("urgent", "HIGH", "", 1), oddValue),
  critical: fc.oneof(fc.constantFrom("true", 1, 0), oddValue),
  ttl_seconds: fc.oneof(
    fc.constantFrom(-1, 1.5, 2_419_201, "60", 1e308, Number.MAX_SAFE_INTEGER, -0),
    oddValue,
  ),
  send_at: oddTime,
};

function notifyBodies(world: World, auth: Auth): fc.Arbitrary<string> {
  const self = selfOf(auth);
  const recipientIds = world.recipients.map((u) => u.id);
  const someRecipients = fc.subarray(recipientIds, { minLength: 1, maxLength: 4 });
  const userIds: fc.Arbitrary<string[]> = self
    ? fc.oneof(
      { weight: 6, arbitrary: fc.constant<string[]>([self]) },
      { weight: 1, arbitrary: someRecipients.map((ids) => [self, ...ids]) },
      { weight: 1, arbitrary: someRecipients },
    )
    : someRecipients;
  const target = fc.oneof(
    fc.record({
      channel: fc.constant("push"),
      token: fc.constantFrom(`fuzz-${SEED}-raw1`, `fuzz-${SEED}-raw2`, `fuzz-${SEED}-c0`),
      platform: fc.constantFrom("ios", "android", "web"),
    }),
    fc.record({ channel: fc.constant("email"), address: fc.constant("raw@example.test") }),
    fc.record({ channel: fc.constant("webhook"), endpoint_id: fc.uuid() }),
  );
  const valid = fc.record({
    user_ids: userIds,
    ...content(),
    ...(auth.kind === "service" ? { targets: fc.array(target, { maxLength: 3 }) } : {}),
  }, { requiredKeys: ["user_ids", "title"] }) as fc.Arbitrary<Record<string, unknown>>;
  return bodies(valid, {
    ...CONTENT_ODDITIES,
    user_ids: fc.oneof(
      fc.array(oddUuid, { minLength: 1, maxLength: 3 }),
      fc.array(fc.uuid(), { minLength: 1, maxLength: 5 }),
      fc.constant(Array.from({ length: 1001 }, () => crypto.randomUUID())),
      fc.constant(Array.from({ length: 1000 }, () => self ?? recipientIds[0])),
      oddValue,
    ),
    targets: fc.oneof(
      fc.array(
        fc.oneof(
          target,
          fc.constantFrom(
            { channel: "push", token: "has space", platform: "android" },
            { channel: "push", token: "x", platform: "windows" },
            { channel: "email", address: "not-an-address" },
            { channel: "email", address: `${"x".repeat(400)}@example.test` },
            { channel: "email", address: "üñí@example.test" },
            { channel: "webhook", endpoint_id: "nope" },
            { channel: "sms", to: "+15550100" },
            { channel: "push" },
          ),
          oddValue,
        ),
        { minLength: 1, maxLength: 3 },
      ),
      fc.constant(
        Array.from({ length: 1001 }, () => ({ channel: "email", address: "raw@example.test" })),
      ),
      oddValue,
    ),
  });
}

function bulkBodies(world: World): fc.Arbitrary<string> {
  const recipientIds = world.recipients.map((u) => u.id);
  const audience = fc.oneof(
    fc.record({ user_ids: fc.subarray(recipientIds, { minLength: 1 }) }),
    fc.record({ topic: fc.constantFrom(world.topic, `fuzz-${SEED}-empty-topic`) }),
  );
  const valid = fc.tuple(
    audience,
    fc.record(content(), { requiredKeys: ["title"] }),
  ).map(([who, what]) => ({ ...who, ...what }));
  return bodies(valid, {
    ...CONTENT_ODDITIES,
    user_ids: fc.oneof(
      fc.array(oddUuid, { maxLength: 3 }),
      fc.constant(Array.from({ length: 10_001 }, () => crypto.randomUUID())),
      oddValue,
    ),
    topic: fc.oneof(
      fc.constantFrom("", "-lead", "has space", "a".repeat(129), "ünï", "../x", world.topic),
      oddValue,
    ),
  });
}

function deviceBodies(): fc.Arbitrary<string> {
  const valid = fc.record({
    token: fc.integer({ min: 0, max: 19 }).map((n) => `fuzz-${SEED}-dev${n}`),
    platform: fc.constantFrom("ios", "android", "web"),
  });
  return bodies(valid, {
    token: fc.oneof(
      fc.constantFrom("", " ", "a b", "é", "x".repeat(4097), "\u0000", "\t"),
      oddValue,
    ),
    platform: fc.oneof(fc.constantFrom("IOS", "windows", "", "android "), oddValue),
  });
}

const TIME_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"];
const ODD_TIME_ZONES = [
  "europe/berlin",
  "EST",
  "EST5EDT",
  "Asia/Calcutta",
  "US/Pacific-New",
  "America/Argentina/ComodRivadavia",
  "Europe/Kyiv",
  "America/Ciudad_Juarez",
  "Etc/GMT+12",
  "Etc/GMT-14",
  "UTC+1",
  "GMT+5",
  "+05:00",
  "Z",
  "Mars/Olympus",
  "../../etc/passwd",
  "Factory",
  "localtime",
  "posixrules",
  "ROC",
  "W-SU",
  " UTC",
  "Europe/Berlin\u0000",
  "a".repeat(65),
];

function preferenceBodies(): fc.Arbitrary<string> {
  const clock = fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
    .map(([h, m]) => `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`);
  const valid = fc.record({
    time_zone: fc.constantFrom(...TIME_ZONES),
    quiet_hours: fc.oneof(
      fc.constant(null),
      fc.record({ start: clock, end: clock }).filter((q) => q.start !== q.end),
    ),
    opt_outs: fc.array(
      fc.record({
        category: fc.constantFrom("*", "news", "orders"),
        channel: fc.constantFrom("push", "email", "webhook"),
      }),
      { maxLength: 3 },
    ),
  }, { requiredKeys: [] });
  return bodies(valid, {
    time_zone: fc.oneof(fc.constantFrom(...ODD_TIME_ZONES), oddValue),
    quiet_hours: fc.oneof(
      fc.constantFrom(
        { start: "24:00", end: "07:00" },
        { start: "22:00", end: "22:00" },
        { start: "7:00", end: "08:00" },
        { start: "22:00" },
        { start: "22:00", end: "07:00", zone: "UTC" },
        "22:00-07:00",
      ),
      oddValue,
    ),
    opt_outs: fc.oneof(
      fc.constant(Array.from({ length: 201 }, () => ({ category: "*", channel: "push" }))),
      fc.constant([{ category: "news", channel: "push" }, { category: "news", channel: "push" }]),
      fc.constantFrom([{ category: "*", channel: "sms" }], [{ category: "NEWS", channel: "push" }]),
      fc.array(oddValue, { maxLength: 3 }),
      oddValue,
    ),
  });
}

function webhookEndpointBodies(): fc.Arbitrary<string> {
  const valid = fc.record({
    url: fc.constantFrom(
      `${stack.fakes.webhook}/fuzz-${SEED}`,
      "https://hooks.example.invalid/herald",
    ),
  });
  return bodies(valid, {
    url: fc.oneof(
      fc.constantFrom(
        "HTTPS://hooks.example.invalid/herald",
        "Http://hooks.example.invalid/herald",
        `https://hooks.example.invalid/${"a".repeat(2100)}`,
        "ftp://hooks.example.invalid/",
        "javascript:alert(1)",
        "http://",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "https://ü.example.invalid/",
        "https://hooks.example.invalid/\u0000",
        "//hooks.example.invalid",
        "http:hooks.example.invalid",
        "hooks.example.invalid",
      ),
      oddValue,
    ),
  });
}

/** A body for an operation this file has no model of: anything at all. */
const anyBody: fc.Arbitrary<string> = fc.oneof(
  fc.jsonValue().map(serialise),
  fc.anything().map(serialise),
  fc.constant("{}"),
  fc.string(),
);

// ── Drafts per endpoint ────────────────────────────────────────────────────

/** One documented operation of the served OpenAPI document. */
interface Operation {
  method: string;
  /** e.g. `/notify/devices/{id}` */
  path: string;
  hasBody: boolean;
  idempotent: boolean;
}

function operationsOf(document: {
  paths: Record<string, Record<string, { requestBody?: unknown; parameters?: { name: string }[] }>>;
}): Operation[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).filter(([method]) =>
      ["get", "put", "post", "delete", "patch"].includes(method)
    )
      .map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        hasBody: Boolean(op.requestBody),
        idempotent: (op.parameters ?? []).some((p) => p.name === "Idempotency-Key"),
      }))
  );
}

function pathParams(world: World, path: string): fc.Arbitrary<string> {
  const names = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => name);
  const value = (name: string): fc.Arbitrary<string> =>
    name === "topic"
      ? fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(world.topic, `fuzz-${SEED}-t1`, "a:b.c_d-e") },
        { weight: 2, arbitrary: oddSegment },
      )
      : fc.oneof({ weight: 3, arbitrary: fc.uuid() }, { weight: 2, arbitrary: oddSegment });
  return fc.tuple(...names.map(value)).map((values) => {
    let i = 0;
    return path.replace(/\{(\w+)\}/g, () => values[i++]);
  });
}

function queryFor(world: World, op: Operation, auth: Auth): fc.Arbitrary<string> {
  if (!op.path.startsWith("/notify/topics/")) return garbageQuery;
  const self = selfOf(auth);
  return fc.oneof(
    fc.constantFrom(...world.recipients.map((u) => `?user_id=${u.id}`)),
    ...(self ? [fc.constant(`?user_id=${self}`)] : []),
    fc.uuid().map((id) => `?user_id=${id}`),
    oddUuidInUrl.map((id) => `?user_id=${encodeSegment(id)}`),
    fc.constant("?user_id=a&user_id=b"),
    garbageQuery,
  );
}

const IDEMPOTENCY_KEYS = Array.from({ length: 6 }, (_, i) => `fuzz-${SEED}-key${i}`);

const idempotencyKey: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constantFrom(...IDEMPOTENCY_KEYS) },
  { weight: 1, arbitrary: fc.uuid() },
  {
    weight: 1,
    arbitrary: fc.constantFrom("", "a b", "ké", "x".repeat(256), "\u00ff", "tab\there"),
  },
);

function bodyFor(world: World, op: Operation, auth: Auth): fc.Arbitrary<string> {
  switch (`${op.method} ${op.path}`) {
    case "POST /notify":
      return notifyBodies(world, auth);
    case "POST /notify/bulk":
      return bulkBodies(world);
    case "PUT /notify/devices":
      return deviceBodies();
    case "PUT /notify/preferences":
      return preferenceBodies();
    case "POST /notify/webhook-endpoints":
      return webhookEndpointBodies();
    default:
      return anyBody;
  }
}

function operationDrafts(world: World, op: Operation): fc.Arbitrary<Draft> {
  return auths(world).chain((auth) =>
    fc.record({
      path: pathParams(world, op.path),
      query: queryFor(world, op, auth),
      body: op.hasBody
        ? bodyFor(world, op, auth)
        : op.method === "GET"
        ? fc.constant(undefined)
        : fc.option(anyBody, { freq: 10, nil: undefined }),
      contentType,
      idempotencyKey: op.idempotent ? idempotencyKey : fc.constant(undefined),
      requestId: requestIdMode,
    }).map(({ path, query, body, contentType, idempotencyKey, requestId }): Draft => ({
      family: `${op.method} ${op.path}`,
      method: op.method,
      path,
      query,
      body,
      auth,
      requestId,
      headers: {
        ...(body !== undefined && contentType !== undefined ? { "content-type": contentType } : {}),
        ...(idempotencyKey !== undefined ? { "idempotency-key": idempotencyKey } : {}),
      },
    }))
  );
}

/** One valid value per documented overrides key; any non-empty subset is a valid `overrides`. */
const VALID_OVERRIDES: Record<string, fc.Arbitrary<unknown>> = {
  android: fc.constantFrom(
    { priority: "high" },
    { ttl: 0 },
    { ttl: "120.5s", collapse_key: "c" },
    { notification: { channel_id: "orders", color: "#00ff00" } },
  ),
  apns: fc.constantFrom(
    { headers: { "apns-collapse-id": "c" } },
    { payload: { aps: { "content-available": 1 } } },
    { payload: { aps: { alert: { title: "T", "loc-args": ["a"] }, badge: 0 } } },
  ),
  webpush: fc.constantFrom(
    { headers: { Urgency: "low" } },
    { headers: { TTL: "0" } },
    { fcm_options: { link: "https://example.invalid/x" } },
  ),
  analytics_label: fc.constantFrom("fuzz", "a.b-c_d~%"),
  email: fc.constantFrom({ subject: "S" }, { html: "<p>H</p>" }, {
    subject: "S",
    html: "<b>H</b>",
  }),
};

/**
 * Each documented overrides key alone and in every combination, from the
 * service role: the contract says each is accepted, so only 201 may answer.
 */
function overrideDrafts(world: World): fc.Arbitrary<Draft> {
  const keys = Object.keys(VALID_OVERRIDES);
  return fc.subarray(keys, { minLength: 1 }).chain((chosen) =>
    fc.record(Object.fromEntries(chosen.map((key) => [key, VALID_OVERRIDES[key]])))
  ).chain((overrides) =>
    fc.record({
      user: fc.constantFrom(...world.recipients.map((u) => u.id)),
      channels: fc.subarray(["push", "email"], { minLength: 1 }),
    }).map(({ user, channels }): Draft => ({
      family: `POST /notify (overrides ${Object.keys(overrides).sort().join("+")})`,
      method: "POST",
      path: "/notify",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_ids: [user], title: "Overrides", channels, overrides }),
      auth: { kind: "service" },
      requestId: "mine",
      only: [201],
    }))
  );
}

/** Byte sequences that are not UTF-8: a lone continuation, a truncated sequence, an overlong form, a surrogate. */
const INVALID_UTF8 = [[0xff], [0x80], [0xc3], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80]];

/** Otherwise valid bodies with bytes that are not UTF-8 inside a string: always a 400, never repaired. */
function invalidUtf8Drafts(world: World): fc.Arbitrary<Draft> {
  return fc.record({
    bad: fc.constantFrom(...INVALID_UTF8),
    auth: auths(world),
    target: fc.constantFrom(
      { path: "/notify", field: "title" },
      { path: "/notify/bulk", field: "title" },
      { path: "/notify/preferences", field: "time_zone" },
      { path: "/notify/webhook-endpoints", field: "url" },
    ),
  }).map(({ bad, auth, target }): Draft => {
    const [before, after] = target.path === "/notify/preferences"
      ? ['{"time_zone":"Europe/', '"}']
      : target.path === "/notify/webhook-endpoints"
      ? ['{"url":"https://example.invalid/', '"}']
      : [`{"user_ids":["${world.recipients[0].id}"],"title":"caf`, '"}'];
    const encoder = new TextEncoder();
    return {
      family: `${target.path} (invalid UTF-8)`,
      method: target.path === "/notify/preferences" ? "PUT" : "POST",
      path: target.path,
      headers: { "content-type": "application/json" },
      body: new Uint8Array([...encoder.encode(before), ...bad, ...encoder.encode(after)]),
      auth,
      requestId: "mine",
      // Authentication runs first, so a caller without a valid credential gets its 401/403.
      only: [400, 401, 403, 429],
    };
  });
}

function wrongMethodDrafts(world: World, operations: Operation[]): fc.Arbitrary<Draft> {
  return fc.tuple(
    fc.constantFrom(...operations),
    fc.constantFrom("PATCH", "OPTIONS", "DELETE", "PUT"),
    auths(world),
  ).filter(([op, method]) => !operations.some((o) => o.path === op.path && o.method === method))
    .chain(([op, method, auth]) =>
      pathParams(world, op.path).map((path): Draft => ({
        family: `${method} (undocumented) ${op.path}`,
        method,
        path,
        auth,
        requestId: "mine",
      }))
    );
}

function deadLetterDrafts(world: World): fc.Arbitrary<Draft> {
  const valid = fc.record({
    limit: fc.integer({ min: 1, max: 1000 }).map(String),
    before: fc.date({ noInvalidDate: true, min: new Date(0), max: new Date("2100-01-01") })
      .map((d) => d.toISOString()),
    notification_id: fc.uuid(),
  }, { requiredKeys: [] });
  // One parameter out of line at a time, so it is the one that reaches the query.
  const oddParam: fc.Arbitrary<[string, string]> = fc.oneof(
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constant("limit"),
        fc.constantFrom("0", "-1", "1e3", "abc", "1001", "", "5.5", "0x10", " 7", "9".repeat(400)),
      ),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(
        fc.constant("before"),
        fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom(...ODD_TIMES) },
          { weight: 1, arbitrary: oddTime.map((v) => (typeof v === "string" ? v : serialise(v))) },
        ).filter((v) => v.length <= 4096),
      ),
    },
    { weight: 1, arbitrary: fc.tuple(fc.constant("notification_id"), oddUuidInUrl) },
    { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 })) },
  );
  const query = fc.tuple(valid, fc.option(oddParam, { freq: 5 })).map(([params, odd]) => {
    // Replaces rather than repeats: the function reads the first of repeated parameters.
    const entries = new Map<string, string>(Object.entries(params));
    if (odd) entries.set(...odd);
    return entries.size ? `?${new URLSearchParams([...entries])}` : "";
  });
  return fc.record({
    query: fc.oneof({ weight: 4, arbitrary: query }, { weight: 1, arbitrary: garbageQuery }),
    auth: fc.oneof(
      { weight: 8, arbitrary: fc.constant<Auth>({ kind: "service" }) },
      { weight: 2, arbitrary: fc.constantFrom(...world.odd) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(...world.callers).map((user): Auth => ({ kind: "user", user })),
      },
    ),
    requestId: requestIdMode,
  }).map(({ query, auth, requestId }): Draft => ({
    family: "GET /dispatch/dead-letters",
    method: "GET",
    path: "/dispatch/dead-letters",
    query,
    auth,
    requestId,
  }));
}

function healthDrafts(world: World): fc.Arbitrary<Draft> {
  return fc.record({
    path: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom("/health", "/health/ready") },
      { weight: 1, arbitrary: fc.constantFrom("/health/", "/health/ready/", "/health/live") },
    ),
    method: fc.oneof(
      { weight: 9, arbitrary: fc.constant("GET") },
      { weight: 1, arbitrary: fc.constantFrom("POST", "DELETE", "OPTIONS") },
    ),
    query: fc.oneof(garbageQuery, fc.constantFrom("?verbose=1", "?details=true", "?timeout=0")),
    auth: fc.oneof(
      fc.constant(undefined),
      fc.constant<Auth>({ kind: "service" }),
      fc.constantFrom(...world.odd),
    ),
    requestId: requestIdMode,
  }).map(({ path, method, query, auth, requestId }): Draft => ({
    family: `${method} ${path}`,
    method,
    path,
    query,
    auth,
    requestId,
  }));
}

/** Standard Webhooks signature headers, made here and not by the code under test. */
async function signHook(
  secret: string,
  id: string,
  timestamp: number,
  body: string | Uint8Array<ArrayBuffer>,
): Promise<Record<string, string>> {
  const key = await crypto.subtle.importKey(
    "raw",
    Uint8Array.from(atob(secret.slice("whsec_".length)), (c) => c.charCodeAt(0)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const content = new Uint8Array(prefix.length + bytes.length);
  content.set(prefix);
  content.set(bytes, prefix.length);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, content));
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": `v1,${btoa(String.fromCharCode(...mac))}`,
  };
}

const OTHER_HOOK_SECRET = `whsec_${btoa("herald-fuzz-someone-elses-secret!!")}`;

/** The table whose INSERT events the run's hook rule turns into notifications. */
const HOOK_TABLE = `fuzz_${SEED}`;

/** A rule rendering every field of a fuzz event into a notification to `record.user_id`. */
const HOOK_TEMPLATE = {
  recipients: ["{{record.user_id}}", "{{record.user_ids}}"],
  title: "{{record.title}}",
  body: "Order {{record.id}}",
  image: "{{record.image}}",
  category: "{{record.category}}",
  data: { id: "{{record.id}}", note: "{{record.note}}" },
};

function hookDrafts(world: World): fc.Arbitrary<Draft> {
  const recipientIds = world.recipients.map((u) => u.id);
  const row = fc.oneof(
    fc.constant(null),
    fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
    fc.dictionary(oddString, oddValue, { maxKeys: 3 }),
    fc.constantFrom({ name: "a\u0000b" }, { id: 1, note: "\ud800" }, { "": null }),
    oddValue,
  );
  const record = fc.record({
    id: fc.oneof(fc.integer(), fc.uuid()),
    user_id: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...recipientIds) },
      { weight: 1, arbitrary: fc.constantFrom(...recipientIds).map((id) => id.toUpperCase()) },
      { weight: 1, arbitrary: fc.uuid() },
      { weight: 2, arbitrary: oddValue },
    ),
    user_ids: fc.subarray(recipientIds, { maxLength: 3 }),
    title: fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 40 }) }, {
      weight: 1,
      arbitrary: oddString,
    }),
    image: fc.oneof(fc.constant("https://img.example.invalid/x.png"), oddString),
    category: fc.oneof(fc.constantFrom("orders", "news"), oddString),
    note: oddValue,
  }, { requiredKeys: ["id", "user_id", "title"] });
  const validEvent = fc.record({
    type: fc.constant("INSERT"),
    table: fc.constant(HOOK_TABLE),
    schema: fc.constant("public"),
    record,
    old_record: fc.constant(null),
  }) as fc.Arbitrary<Record<string, unknown>>;
  const body: fc.Arbitrary<string | Uint8Array<ArrayBuffer>> = fc.oneof(
    {
      weight: 9,
      arbitrary: bodies(validEvent, {
        type: fc.oneof(fc.constantFrom("UPDATE", "DELETE", "TRUNCATE", "insert", ""), oddValue),
        table: fc.oneof(fc.constantFrom("a".repeat(64), "t\u0000", "ü", "orders"), oddValue),
        schema: fc.oneof(fc.constantFrom("", "a".repeat(64), "s\u0000", "auth"), oddValue),
        record: row,
        old_record: row,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]),
        new Uint8Array([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]),
        new Uint8Array(0),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(1_000, 3_000, 20_000, 100_000).map((depth) =>
        `{"type":"INSERT","table":"${HOOK_TABLE}","schema":"public","record":{"a":${
          deepJson(depth)
        }},"old_record":null}`
      ),
    },
  );
  const messageId = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 400 }).map((n) => `msg_fuzz_${SEED}_${n}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        `msg_fuzz_${SEED}_${"x".repeat(230)}`,
        "x".repeat(257),
        "has space",
        "",
      ),
    },
  );
  const garbageHeaders = fc.record({
    "webhook-id": fc.oneof(messageId, fc.string({ maxLength: 20 })),
    "webhook-timestamp": fc.oneof(
      fc.constantFrom("", "-1", "1e9", "999999999999999", "abc", " 1700000000"),
      fc.constant(String(Math.floor(Date.now() / 1000))),
    ),
    "webhook-signature": fc.oneof(
      fc.constantFrom("", "v1,", "v1,AAAA", "v2,abc", "v1,!!!", "v1,a v1,b v1,c"),
      fc.string({ maxLength: 60 }),
    ),
  }, { requiredKeys: [] });
  const kind = fc.constantFrom("unsigned", "unsigned", "signed", "signed", "wrong-secret", "stale");
  return fc.record({ kind, body, messageId, garbageHeaders, contentType, requestId: requestIdMode })
    .map(({ kind, body, messageId, garbageHeaders, contentType, requestId }): Draft => ({
      family: `POST /hooks (${kind})`,
      method: "POST",
      path: "/hooks",
      body,
      requestId,
      headers: {
        ...(contentType !== undefined ? { "content-type": contentType } : {}),
        ...(kind === "unsigned" ? garbageHeaders : {}),
      },
      ...(kind === "unsigned" ? {} : { hook: { kind, id: messageId } }),
      // Unverifiable events are refused; 503 only while no secret is configured.
      ...(kind === "signed" ? {} : { only: [400, 401, 413, 415, 422, 503] }),
    }));
}

// ── Sending and judging ────────────────────────────────────────────────────

async function send(
  draft: Draft,
  index: number,
): Promise<{ sent: Sent; answer?: Answer; error?: string }> {
  const headers: Record<string, string> = { ...draft.headers };
  const authorization = authHeader(draft.auth);
  if (authorization !== undefined) headers.authorization = authorization;
  let requestId: string | undefined;
  if (draft.requestId === "mine") {
    requestId = `fuzz-${SEED}-${index}`;
    headers["x-request-id"] = requestId;
  } else if (draft.requestId !== "none") {
    if ("garbage" in draft.requestId) headers["x-request-id"] = draft.requestId.garbage;
    else headers.traceparent = draft.requestId.traceparent;
  }
  if (draft.hook && draft.body !== undefined) {
    const now = Math.floor(Date.now() / 1000);
    Object.assign(
      headers,
      await signHook(
        draft.hook.kind === "wrong-secret" ? OTHER_HOOK_SECRET : LOCAL_HOOK_SECRET,
        draft.hook.id,
        draft.hook.kind === "stale" ? now - 600 : now,
        draft.body,
      ),
    );
  }
  const sent: Sent = {
    draft,
    url: `${API}${draft.path}${draft.query ?? ""}`,
    init: { method: draft.method, headers, body: draft.body },
    requestId,
  };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  const started = performance.now();
  try {
    const response = await fetch(sent.url, { ...sent.init, signal: controller.signal });
    const text = await response.text();
    return {
      sent,
      answer: {
        status: response.status,
        headers: response.headers,
        text,
        ms: Math.round(performance.now() - started),
      },
    };
  } catch (error) {
    return { sent, error: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/** The gateway's own answers (verify_jwt refusals, unknown functions): not the function's shape. */
function fromGateway(answer: Answer): boolean {
  if (answer.headers.get("x-request-id")) return false;
  try {
    const body = JSON.parse(answer.text);
    return typeof body.code === "string" && body.code !== "BOOT_ERROR" &&
      ((answer.status === 401 && body.code.startsWith("UNAUTHORIZED_")) ||
        (answer.status === 404 && body.code === "NOT_FOUND"));
  } catch {
    return false;
  }
}

/** What is wrong with an answer, or nothing. */
function judge(sent: Sent, answer: Answer): string | undefined {
  const { draft } = sent;
  const { status } = answer;
  if (draft.only && !draft.only.includes(status)) {
    return `${status} where only ${draft.only.join("/")} may answer`;
  }
  if (status >= 500 && !draft.only?.includes(status)) {
    return `${status} (5xx)`;
  }
  if (fromGateway(answer)) return undefined;
  const echoed = answer.headers.get("x-request-id");
  if (!echoed) return "no x-request-id";
  if (sent.requestId && echoed !== sent.requestId) return "x-request-id not echoed";
  if (!SANE_REQUEST_ID.test(echoed)) return "x-request-id echoes an unsafe value";
  if (status < 400) return undefined;
  if (!/^application\/problem\+json\b/.test(answer.headers.get("content-type") ?? "")) {
    return `${status} is not application/problem+json`;
  }
  let problem: Record<string, unknown>;
  try {
    problem = JSON.parse(answer.text);
  } catch {
    return `${status} problem body is not JSON`;
  }
  if (typeof problem.type !== "string" || !PROBLEM_TYPE.test(problem.type)) {
    return `${status} problem without a herald type`;
  }
  if (problem.status !== status) return `${status} problem says status ${problem.status}`;
  if (problem.request_id !== echoed) return `${status} problem request_id differs from the header`;
  return undefined;
}

/** The notifications a 2xx to POST /notify, /notify/bulk or /hooks announced. */
function acceptedBy(sent: Sent, answer: Answer): Accepted[] {
  if (answer.status < 200 || answer.status > 299) return [];
  const family = sent.draft.family;
  if (family === "POST /hooks (signed)") {
    const { notifications = [] } = JSON.parse(answer.text) as {
      notifications?: { notification_id: string | null; deliveries: number }[];
    };
    return notifications.filter((n) => n.notification_id)
      .map((n) => ({ id: n.notification_id!, deliveries: n.deliveries, sent, answer }));
  }
  if (!["POST /notify", "POST /notify/bulk"].includes(family)) return [];
  const body = JSON.parse(answer.text);
  return typeof body.id === "string"
    ? [{ id: body.id, deliveries: body.deliveries, sent, answer }]
    : [];
}

async function runAll(
  drafts: Draft[],
  firstIndex: number,
  onAnswer: (sent: Sent, answer: Answer | undefined, error?: string) => void,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < drafts.length) {
        const index = next++;
        const { sent, answer, error } = await send(drafts[index], firstIndex + index);
        onAnswer(sent, answer, error);
      }
    }),
  );
}

function clip(text: string, max = 1500): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

/** The exact request and answer, bodies as JSON string literals so control characters show. */
function describe({ reason, sent, answer }: Failure): string {
  const body = sent.init.body;
  const shownBody = body === undefined
    ? "(no body)"
    : typeof body === "string"
    ? JSON.stringify(clip(body))
    : `bytes [${[...body].join(", ")}]`;
  const headers = Object.entries(sent.init.headers)
    .map(([name, value]) => `    ${name}: ${JSON.stringify(clip(value, 400))}`).join("\n");
  const reply = answer
    ? `  → ${answer.status} in ${answer.ms} ms, content-type ${
      answer.headers.get("content-type")
    }, x-request-id ${answer.headers.get("x-request-id")}\n    ${clip(answer.text, 2000)}`
    : "  → no answer";
  return `✗ ${reason}\n  as ${authLabel(sent.draft.auth)}: ${sent.init.method} ${
    clip(sent.url, 600)
  }\n${headers}\n    body: ${shownBody}\n${reply}`;
}

async function functionPresent(name: string, method = "GET"): Promise<boolean> {
  const response = await fetch(`${API}/${name}`, { method });
  const body = await response.text();
  return !(response.status === 404 && body.includes('"NOT_FOUND"'));
}

Deno.test("fuzz: thousands of generated requests to every endpoint get no 5xx, always a request id and problem+json errors, and lose no accepted notification", async () => {
  const sql = adminSql();
  const accepted: Accepted[] = [];
  const failures: Failure[] = [];
  const byStatus = new Map<string, number>();
  const byFamily = new Map<string, Map<string, number>>();
  const hookIds = new Set<string>();
  let world: World | undefined;
  const started = performance.now();
  try {
    world = await makeWorld(sql);
    const documentResponse = await fetch(`${API}/notify/openapi.json`, {
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    assert.equal(documentResponse.status, 200, "the notify function serves its OpenAPI document");
    const operations = operationsOf(await documentResponse.json());
    assert.ok(operations.length > 0, "the document lists operations");
    const hasHooks = await functionPresent("hooks", "POST");
    if (hasHooks) {
      await sql`insert into herald.hook_rules (name, table_name, event, template)
        values (${`fuzz-${SEED}`}, ${HOOK_TABLE}, 'INSERT', ${sql.json(HOOK_TEMPLATE)})`;
    }
    const hasHealth = await functionPresent("health");

    const sample = <T>(arbitrary: fc.Arbitrary<T>, numRuns: number, offset: number): T[] =>
      numRuns > 0 ? fc.sample(arbitrary, { numRuns, seed: SEED + offset }) : [];
    const drafts: Draft[] = [
      ...operations.flatMap((op, i) =>
        sample(
          operationDrafts(world!, op),
          SHARE[`${op.method} ${op.path}`] ?? DEFAULT_SHARE,
          i,
        )
      ),
      ...sample(wrongMethodDrafts(world, operations), WRONG_METHOD_REQUESTS, 100),
      ...sample(overrideDrafts(world), OVERRIDE_REQUESTS, 105),
      ...sample(invalidUtf8Drafts(world), INVALID_UTF8_REQUESTS, 106),
      ...sample(deadLetterDrafts(world), DEAD_LETTER_REQUESTS, 101),
      ...(hasHealth ? sample(healthDrafts(world), HEALTH_REQUESTS, 102) : []),
      ...(hasHooks ? sample(hookDrafts(world), HOOK_REQUESTS, 103) : []),
    ];
    // Interleave the endpoints so concurrent requests hit different code paths.
    const order = fc.sample(fc.integer(), { numRuns: drafts.length, seed: SEED + 104 });
    const shuffled = drafts.map((draft, i) => ({ draft, key: order[i] }))
      .sort((a, b) => a.key - b.key).map(({ draft }) => draft);
    console.log(
      `fuzz seed ${SEED} (replay with HERALD_FUZZ_SEED=${SEED}): ${shuffled.length} requests` +
        `, ${operations.length} documented notify operations` +
        `${hasHooks ? "" : "; hooks function absent, skipped"}` +
        `${hasHealth ? "" : "; health function absent, skipped"}`,
    );

    const record = (sent: Sent, answer: Answer | undefined, error?: string) => {
      const status = answer ? String(answer.status) : "no answer";
      const shownStatus = answer && fromGateway(answer) ? `${status} (gateway)` : status;
      byStatus.set(shownStatus, (byStatus.get(shownStatus) ?? 0) + 1);
      const family = byFamily.get(sent.draft.family) ?? new Map<string, number>();
      family.set(shownStatus, (family.get(shownStatus) ?? 0) + 1);
      byFamily.set(sent.draft.family, family);
      if (sent.draft.hook && answer && answer.status < 300) hookIds.add(sent.draft.hook.id);
      if (!answer) {
        failures.push({
          reason: `${sent.draft.family}: no answer (${clip(String(error), 200)})`,
          sent,
        });
        return;
      }
      const reason = judge(sent, answer);
      if (reason) {
        failures.push({
          reason: `${sent.draft.family} as ${authLabel(sent.draft.auth)}: ${reason}`,
          sent,
          answer,
        });
        return;
      }
      try {
        accepted.push(...acceptedBy(sent, answer));
      } catch (error) {
        failures.push({
          reason: `${sent.draft.family}: 2xx body unreadable (${error})`,
          sent,
          answer,
        });
      }
    };
    await runAll(shuffled, 0, record);

    // Then the notifications that exist: status, progress and cancel, by sender, others, service.
    const ids = [...new Set(accepted.map((a) => a.id))].slice(0, 80);
    if (ids.length) {
      const follow = fc.record({
        id: fc.constantFrom(...ids),
        op: fc.constantFrom(
          ["GET", "/notify/notifications/{id}"],
          ["GET", "/notify/bulk/{id}"],
          ["POST", "/notify/notifications/{id}/cancel"],
        ),
        auth: auths(world),
        requestId: requestIdMode,
      }).map(({ id, op: [method, path], auth, requestId }): Draft => ({
        family: `${method} ${path}`,
        method,
        path: path.replace("{id}", id),
        auth,
        requestId,
      }));
      await runAll(sample(follow, 200, 105), shuffled.length, record);
    }

    // Never accepted-but-lost: each accepted notification exists with the deliveries it announced.
    const rows = await sql<{ id: string; deliveries: number }[]>`
      select n.id, count(d.id)::int as deliveries
      from herald.notifications n left join herald.deliveries d on d.notification_id = n.id
      where n.id = any(${accepted.map((a) => a.id)}::uuid[])
      group by n.id`;
    const stored = new Map(rows.map((row) => [row.id, row.deliveries]));
    for (const a of accepted) {
      const body = JSON.parse(a.answer.text);
      if (!stored.has(a.id)) {
        failures.push({
          reason: "accepted notification is missing",
          sent: a.sent,
          answer: a.answer,
        });
      } else if (stored.get(a.id) !== a.deliveries) {
        failures.push({
          reason: `accepted with ${a.deliveries} deliveries, ${stored.get(a.id)} stored`,
          sent: a.sent,
          answer: a.answer,
        });
      } else if (a.answer.status === 201 && body.results?.length !== a.deliveries) {
        failures.push({
          reason: `201 lists ${body.results?.length} results for ${a.deliveries} deliveries`,
          sent: a.sent,
          answer: a.answer,
        });
      }
    }

    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const statuses = [...byStatus].sort(([a], [b]) => a.localeCompare(b))
      .map(([status, n]) => `${status}×${n}`).join("  ");
    console.log(
      `fuzz: ${[...byStatus.values()].reduce((a, b) => a + b, 0)} requests in ${seconds} s`,
    );
    console.log(`  by status: ${statuses}`);
    for (const [family, counts] of [...byFamily].sort(([a], [b]) => a.localeCompare(b))) {
      const shown = [...counts].sort(([a], [b]) => a.localeCompare(b))
        .map(([status, n]) => `${status}×${n}`).join(" ");
      console.log(`  ${family.padEnd(48)} ${shown}`);
    }
    const withDeliveries = accepted.filter((a) => a.deliveries > 0).length;
    console.log(
      `  accepted notifications: ${accepted.length} (${withDeliveries} with deliveries), ` +
        `all checked in herald.deliveries`,
    );

    if (failures.length) {
      const groups = new Map<string, Failure[]>();
      for (const failure of failures) {
        groups.set(failure.reason, [...(groups.get(failure.reason) ?? []), failure]);
      }
      console.log(`\n${failures.length} failures in ${groups.size} kinds:`);
      for (const [reason, group] of groups) {
        console.log(`\n── ${reason} (${group.length}×); ${Math.min(group.length, 2)} shown:`);
        for (const failure of group.slice(0, 2)) console.log(describe(failure));
      }
    }
    assert.equal(failures.length, 0, `${failures.length} answers broke the contract (above)`);
  } finally {
    // What the run created, then its users (cascading to devices, topics, preferences, endpoints).
    const users = world ? [...world.callers, ...world.recipients].map((u) => u.id) : [];
    await sql`delete from herald.notifications
      where id = any(${accepted.map((a) => a.id)}::uuid[]) or sender_id = any(${users}::uuid[])
        or request_id like ${`fuzz-${SEED}-%`}`;
    await sql`delete from herald.idempotency_keys where key like ${`fuzz-${SEED}-%`}
      or caller = any(${users.map((id) => `user:${id}`)})`;
    if (hookIds.size) {
      await sql`delete from herald.notifications where id in (
        select unnest(notification_ids) from herald.hook_events where id = any(${[...hookIds]}))`;
      await sql`delete from herald.hook_events where id = any(${[...hookIds]})`;
    }
    await sql`delete from herald.hook_rules where table_name = ${HOOK_TABLE}`.catch((error) => {
      // Without the hooks migration there is no rule to remove.
      if (error.code !== "42P01") throw error;
    });
    await sql`delete from auth.users where id = any(${users}::uuid[])`;
    await sql.end();
  }
});
