/**
 * The local stack's private ports answer only its internal address, as
 * Kong's `ip-restriction` does: from another loopback address, neither the
 * edge runtime's front doors, nor each function's own process, nor the
 * inbox's API proxy are a way around Kong.
 */
import assert from "node:assert/strict";
import { fromAddress, loopbackAddress } from "./support/from_address.ts";
import { stack } from "./support/stack.ts";

const dispatchPaths = (base: string) => [
  `${base}/functions/v1/dispatch/dead-letters`,
  `${base}/dispatch/dead-letters`,
];

Deno.test("local doors: from 127.0.0.1 the edge runtime answers a secret key's dispatch call", async () => {
  for (
    const url of [
      ...dispatchPaths(`http://127.0.0.1:${stack.ports.edge}`),
      `http://127.0.0.1:${stack.ports.functions}/dispatch/dead-letters`,
    ]
  ) {
    const response = await fromAddress("127.0.0.1", url, { apikey: stack.secretKey });
    assert.equal(response.status, 200, `${url}: ${await response.clone().text()}`);
    await response.body?.cancel();
  }
});

Deno.test("local doors: from another loopback address Kong, the edge runtime and the inbox all refuse dispatch", async () => {
  const outsider = loopbackAddress();
  const headers = { apikey: stack.secretKey };
  const kong = await fromAddress(
    outsider,
    `${stack.apiUrl}/functions/v1/dispatch/dead-letters`,
    headers,
  );
  assert.equal(kong.status, 403, "Kong's ip-restriction");
  await kong.body?.cancel();
  for (const port of [stack.ports.edge, stack.ports.edgeCanary]) {
    for (const url of dispatchPaths(`http://127.0.0.1:${port}`)) {
      const response = await fromAddress(outsider, url, headers);
      assert.equal(response.status, 403, url);
      assert.match(await response.text(), /only 127\.0\.0\.1 may call/);
    }
  }
  // Each function's own process: the local stack gives every function a port.
  for (const port of [stack.ports.functions, stack.ports.functionsCanary]) {
    const response = await fromAddress(
      outsider,
      `http://127.0.0.1:${port}/dispatch/dead-letters`,
      headers,
    );
    assert.equal(response.status, 403, `function port ${port}`);
    await response.body?.cancel();
  }
  const inbox = await fromAddress(
    outsider,
    `http://127.0.0.1:${stack.ports.inbox}/api/proxy/functions/v1/dispatch/dead-letters`,
    headers,
  );
  assert.equal(inbox.status, 403, "the inbox's proxy");
  await inbox.body?.cancel();
  const items = await fromAddress(outsider, `http://127.0.0.1:${stack.ports.inbox}/api/items`, {});
  assert.equal(items.status, 403, "the inbox itself");
  await items.body?.cancel();
});
