/**
 * Standard Webhooks both ways, against the reference library
 * (`standardwebhooks`) and its published vector: what Herald signs the
 * library verifies, what the library signs Herald verifies, for a
 * `whsec_`-prefixed secret and the same secret bare; signing and verifying
 * take and refuse exactly the same secrets, and so does the database
 * (`herald.standard_webhook_key`, `herald.sign_standard_webhook`).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Webhook } from "standardwebhooks";
import {
  createStandardWebhookVerifier,
  secretKey,
  signWebhook,
} from "../supabase/functions/_shared/webhooks/standard_webhooks.ts";
import { withAdminSql } from "./support/stack.ts";

// The reference libraries' test vector.
const VECTOR = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

Deno.test("standard webhooks: the reference vector, with the secret prefixed and bare", async () => {
  for (const secret of [VECTOR.secret, VECTOR.secret.slice("whsec_".length)]) {
    assert.equal(
      await signWebhook([secret], VECTOR.id, VECTOR.timestamp, VECTOR.body),
      VECTOR.signature,
    );
    const verifier = createStandardWebhookVerifier({
      secrets: [secret],
      now: () => VECTOR.timestamp * 1000,
    });
    const headers = new Headers({
      "webhook-id": VECTOR.id,
      "webhook-timestamp": String(VECTOR.timestamp),
      "webhook-signature": VECTOR.signature,
    });
    assert.deepEqual(await verifier.verify(headers, VECTOR.body), {
      id: VECTOR.id,
      timestamp: VECTOR.timestamp,
    });
  }
});

Deno.test("standard webhooks: Herald's signature verifies with the reference library, and the library's with Herald", async () => {
  const secret = `whsec_${
    btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))))
  }`;
  const reference = new Webhook(secret);
  const at = new Date();
  const timestamp = Math.floor(at.getTime() / 1000);
  const body = JSON.stringify({ type: "notification", data: { title: "é ✓" } });
  for (const form of [secret, secret.slice("whsec_".length)]) {
    const id = `msg_${crypto.randomUUID()}`;
    const ours = await signWebhook([form], id, timestamp, body);
    const headers = {
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": ours,
    };
    assert.deepEqual(reference.verify(body, headers), JSON.parse(body));
    const theirs = reference.sign(id, at, body);
    const verifier = createStandardWebhookVerifier({ secrets: [form] });
    const verified = await verifier.verify(
      new Headers({ ...headers, "webhook-signature": theirs }),
      new TextEncoder().encode(body),
    );
    assert.equal(verified.id, id);
  }
});

Deno.test("standard webhooks: signing and verifying refuse the same secrets, never echoing them", async () => {
  const refused = ["", "whsec_", "plain-secret", "whsec_not base64!", "whsec_%%%%", "====="];
  for (const secret of refused) {
    const quiet = (error: Error) =>
      error instanceof RangeError &&
      (secret.replace(/^whsec_/, "").length < 3 ||
        !error.message.includes(secret.replace(/^whsec_/, "")));
    assert.throws(() => secretKey(secret, "secret"), quiet, JSON.stringify(secret));
    await assert.rejects(signWebhook([secret], "msg_1", 1, "{}"), quiet, JSON.stringify(secret));
    assert.throws(() => createStandardWebhookVerifier({ secrets: [secret] }), quiet);
  }
});

Deno.test("standard webhooks: the database takes exactly the secrets the functions take, and signs the reference vector", async () => {
  const secrets = [
    VECTOR.secret,
    VECTOR.secret.slice("whsec_".length),
    "QQ",
    "QQ=",
    "QQ==",
    "QUI",
    "QUI=",
    "QR==",
    "Q",
    "QQ===",
    "",
    "whsec_",
    "whsec_whsec_QQ==",
    "plain-secret",
    "whsec_not base64!",
    "=====",
  ];
  await withAdminSql(async (sql) => {
    for (const secret of secrets) {
      let expected: string | null = null;
      try {
        expected = Buffer.from(secretKey(secret, "secret")).toString("hex");
      } catch {
        // refused: the database must refuse it too
      }
      const [{ key }] =
        await sql`select encode(herald.standard_webhook_key(${secret}), 'hex') as key`;
      assert.equal(key, expected, JSON.stringify(secret));
    }
    const [{ signature }] = await sql`
      select herald.sign_standard_webhook(${VECTOR.secret.slice("whsec_".length)}, ${VECTOR.id},
        ${VECTOR.timestamp}, ${VECTOR.body}) as signature`;
    assert.equal(signature, VECTOR.signature);
    await assert.rejects(
      sql`select herald.sign_standard_webhook('plain-secret', 'msg_1', 1, '{}')`,
      (error: Error & { code?: string }) => error.code === "22023",
    );
  });
});
