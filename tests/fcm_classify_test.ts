import assert from "node:assert/strict";
import { classifyFcm, QUOTA_WAIT_MS } from "../supabase/functions/_shared/providers/fcm.ts";
import {
  RETRY_AFTER_CAP_MS,
  retryAfterMs,
} from "../supabase/functions/_shared/providers/outcome.ts";

const NOW = Date.parse("2026-11-22T12:00:00Z");

/** The error body FCM v1 sends, built by hand from the documented shape. */
function fcmError(code: number, status: string, errorCode?: string) {
  return {
    error: {
      code,
      message: `${status} for test`,
      status,
      details: errorCode
        ? [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode }]
        : [],
    },
  };
}

const cases: [
  string,
  number,
  unknown,
  { kind: string; disableTarget?: boolean; code?: string; minAfterMs?: number },
][] = [
  ["UNREGISTERED", 404, fcmError(404, "NOT_FOUND", "UNREGISTERED"), {
    kind: "permanent",
    disableTarget: true,
  }],
  ["SENDER_ID_MISMATCH", 403, fcmError(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), {
    kind: "permanent",
    disableTarget: true,
  }],
  ["INVALID_ARGUMENT", 400, fcmError(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), {
    kind: "permanent",
    disableTarget: false,
  }],
  ["THIRD_PARTY_AUTH_ERROR", 401, fcmError(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), {
    kind: "permanent",
    disableTarget: false,
  }],
  ["QUOTA_EXCEEDED", 429, fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), {
    kind: "retry",
    minAfterMs: QUOTA_WAIT_MS,
  }],
  ["UNAVAILABLE", 503, fcmError(503, "UNAVAILABLE", "UNAVAILABLE"), { kind: "retry" }],
  ["INTERNAL", 500, fcmError(500, "INTERNAL", "INTERNAL"), { kind: "retry" }],
  ["429 without details", 429, fcmError(429, "RESOURCE_EXHAUSTED"), {
    kind: "retry",
    code: "QUOTA_EXCEEDED",
  }],
  ["expired access token", 401, fcmError(401, "UNAUTHENTICATED"), { kind: "retry" }],
  ["502 with an HTML body", 502, undefined, { kind: "retry" }],
  ["unknown 4xx", 418, fcmError(418, "TEAPOT"), { kind: "permanent", disableTarget: false }],
  // Canonical statuses without FcmError details, read as firebase-admin reads them.
  ["NOT_FOUND without details", 404, fcmError(404, "NOT_FOUND"), {
    kind: "permanent",
    disableTarget: true,
    code: "UNREGISTERED",
  }],
  ["RESOURCE_EXHAUSTED without details", 429, fcmError(429, "RESOURCE_EXHAUSTED"), {
    kind: "retry",
    code: "QUOTA_EXCEEDED",
    minAfterMs: QUOTA_WAIT_MS,
  }],
  ["PERMISSION_DENIED without details (IAM)", 403, fcmError(403, "PERMISSION_DENIED"), {
    kind: "permanent",
    disableTarget: false,
    code: "PERMISSION_DENIED",
  }],
  ["APNS_AUTH_ERROR", 401, fcmError(401, "UNAUTHENTICATED", "APNS_AUTH_ERROR"), {
    kind: "permanent",
    disableTarget: false,
    code: "THIRD_PARTY_AUTH_ERROR",
  }],
  ["UNAVAILABLE without details", 503, fcmError(503, "UNAVAILABLE"), {
    kind: "retry",
    code: "UNAVAILABLE",
  }],
  ["a bare 401", 401, undefined, { kind: "retry", code: "UNAUTHENTICATED" }],
  ["an errorCode newer than Herald", 503, fcmError(503, "UNAVAILABLE", "SOMETHING_NEW"), {
    kind: "retry",
    code: "UNAVAILABLE",
  }],
];

for (const [name, status, body, expected] of cases) {
  Deno.test(`classifyFcm() maps ${name} (HTTP ${status}) to ${expected.kind}`, () => {
    const outcome = classifyFcm(status, body, new Headers(), NOW);
    assert.equal(outcome.kind, expected.kind);
    if (outcome.kind === "permanent") assert.equal(outcome.disableTarget, expected.disableTarget);
    if (expected.code) assert.equal(outcome.kind !== "sent" && outcome.code, expected.code);
    if (expected.minAfterMs) {
      assert.ok(outcome.kind === "retry" && (outcome.afterMs ?? 0) >= expected.minAfterMs);
    }
  });
}

Deno.test("classifyFcm() returns the message name of a success", () => {
  const outcome = classifyFcm(200, { name: "projects/p/messages/123" }, new Headers(), NOW);
  assert.deepEqual(outcome, {
    kind: "sent",
    providerId: "projects/p/messages/123",
    statusCode: 200,
  });
});

Deno.test("classifyFcm() honours Retry-After over nothing, and QUOTA_EXCEEDED's minute over a shorter one", () => {
  const unavailable = classifyFcm(
    503,
    fcmError(503, "UNAVAILABLE", "UNAVAILABLE"),
    new Headers({ "retry-after": "7" }),
    NOW,
  );
  assert.equal(unavailable.kind === "retry" && unavailable.afterMs, 7000);
  const quota = classifyFcm(
    429,
    fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
    new Headers({ "retry-after": "5" }),
    NOW,
  );
  assert.equal(quota.kind === "retry" && quota.afterMs, QUOTA_WAIT_MS);
  const longQuota = classifyFcm(
    429,
    fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
    new Headers({ "retry-after": "120" }),
    NOW,
  );
  assert.equal(longQuota.kind === "retry" && longQuota.afterMs, 120_000);
});

Deno.test("retryAfterMs() reads delta-seconds and HTTP-dates, and ignores garbage", () => {
  assert.equal(retryAfterMs("30", NOW), 30_000);
  assert.equal(retryAfterMs("Sun, 22 Nov 2026 12:01:00 GMT", NOW), 60_000);
  assert.equal(retryAfterMs("Sun, 22 Nov 2026 11:00:00 GMT", NOW), 0);
  assert.equal(retryAfterMs("soon", NOW), undefined);
  assert.equal(retryAfterMs(null, NOW), undefined);
});

Deno.test("retryAfterMs() waits at most an hour, however long the provider asks for", () => {
  assert.equal(retryAfterMs("3600", NOW), 3_600_000);
  assert.equal(retryAfterMs("999999999", NOW), RETRY_AFTER_CAP_MS);
  assert.equal(retryAfterMs("9".repeat(400), NOW), RETRY_AFTER_CAP_MS); // past Number's range
  assert.equal(retryAfterMs("Fri, 01 Jan 2100 00:00:00 GMT", NOW), RETRY_AFTER_CAP_MS);
  const classified = classifyFcm(
    503,
    fcmError(503, "UNAVAILABLE"),
    new Headers({ "retry-after": "999999999" }),
    NOW,
  );
  assert.equal(classified.kind === "retry" && classified.afterMs, RETRY_AFTER_CAP_MS);
});

Deno.test("classifyFcm() treats an error code named like an Object member as unknown, not a crash", () => {
  const outcome = classifyFcm(
    400,
    fcmError(400, "INVALID_ARGUMENT", "constructor"),
    new Headers(),
    NOW,
  );
  assert.equal(outcome.kind, "permanent");
  assert.equal(outcome.kind === "permanent" && outcome.code, "INVALID_ARGUMENT");
});

Deno.test("classifyFcm() reads errorCode only from the FcmError detail, as firebase-admin does", () => {
  const body = {
    error: {
      code: 404,
      message: "Requested entity was not found.",
      status: "NOT_FOUND",
      details: [{ "@type": "type.googleapis.com/google.rpc.Other", errorCode: "INTERNAL" }],
    },
  };
  const outcome = classifyFcm(404, body, new Headers(), NOW);
  assert.equal(outcome.kind === "permanent" && outcome.code, "UNREGISTERED");
});

Deno.test("classifyFcm() disables a token FCM's INVALID_ARGUMENT names, by message or by field", () => {
  const byMessage = {
    error: {
      code: 400,
      message: "The registration token is not a valid FCM registration token",
      status: "INVALID_ARGUMENT",
      details: [{
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        errorCode: "INVALID_ARGUMENT",
      }],
    },
  };
  const byField = {
    error: {
      code: 400,
      message: "Request contains an invalid argument.",
      status: "INVALID_ARGUMENT",
      details: [
        {
          "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
          errorCode: "INVALID_ARGUMENT",
        },
        {
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          fieldViolations: [{ field: "message.token", description: "Invalid registration token" }],
        },
      ],
    },
  };
  const aboutTheMessage = {
    error: {
      code: 400,
      message:
        "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)",
      status: "INVALID_ARGUMENT",
      details: [{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        fieldViolations: [{ field: "message.android.ttl", description: "Invalid value" }],
      }],
    },
  };
  for (const body of [byMessage, byField]) {
    const outcome = classifyFcm(400, body, new Headers(), NOW);
    assert.ok(outcome.kind === "permanent", JSON.stringify(outcome));
    assert.equal(outcome.code, "INVALID_REGISTRATION_TOKEN");
    assert.equal(outcome.disableTarget, true);
  }
  const message = classifyFcm(400, aboutTheMessage, new Headers(), NOW);
  assert.ok(message.kind === "permanent" && !message.disableTarget);
  assert.equal(message.code, "INVALID_ARGUMENT");
});

Deno.test("classifyFcm() names FCM's message once in the reason", () => {
  for (
    const [status, canonical, errorCode] of [
      [418, "TEAPOT", undefined],
      [400, "FAILED_PRECONDITION", undefined],
      [400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"],
      [404, "NOT_FOUND", "UNREGISTERED"],
    ] as const
  ) {
    const outcome = classifyFcm(status, fcmError(status, canonical, errorCode), new Headers(), NOW);
    assert.ok(outcome.kind !== "sent");
    const text = `${canonical} for test`;
    assert.equal(outcome.reason.split(text).length - 1, 1, outcome.reason);
    assert.ok(!outcome.reason.startsWith(`${text}: ${text}`), outcome.reason);
  }
});
