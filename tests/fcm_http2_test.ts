/**
 * Real FCM is HTTPS: the sender must reach it over HTTP/2 where the runtime
 * offers it (one connection carries many sends at once). A TLS listener that
 * offers `h2` and `http/1.1` records what the sender's connection chose.
 * The stand-ins speak plain HTTP/1.1 on loopback, so this is the check that
 * nothing between the sender and the runtime's fetch forces HTTP/1.1.
 */
import assert from "node:assert/strict";
import { createFcmSender } from "../supabase/functions/_shared/providers/fcm.ts";

const TLS = new URL("./fakes/tls/", import.meta.url);

Deno.test("fcm: the sender negotiates HTTP/2 with an HTTPS FCM", async () => {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(new URL("cert.pem", TLS)),
    key: await Deno.readTextFile(new URL("key.pem", TLS)),
    alpnProtocols: ["h2", "http/1.1"],
  });
  const chosen = (async () => {
    const conn = await listener.accept();
    try {
      return (await conn.handshake()).alpnProtocol;
    } finally {
      conn.close();
    }
  })();
  // The runtime's own fetch, trusting the test CA: nothing else differs from production.
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(new URL("ca.pem", TLS))],
  });
  try {
    const send = createFcmSender({
      projectId: "herald-h2",
      tokens: { token: () => Promise.resolve("token"), invalidate() {} },
      baseUrl: `https://localhost:${listener.addr.port}`,
      fetch: (url, init) => fetch(url, { ...init, client }),
    });
    // The listener hangs up after the handshake: the send is a retry, not a crash.
    const outcome = await send({ token: "device", notification: { title: "Hi" } });
    assert.equal(outcome.kind, "retry");
    assert.equal(await chosen, "h2");
  } finally {
    client.close();
    listener.close();
  }
});
