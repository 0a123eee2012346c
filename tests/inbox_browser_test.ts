/**
 * The inbox in a real browser: headless Chromium (Debian's) against the test
 * stack. A registered device's push appears as a card without a reload; an
 * HTML e-mail renders inside its sandboxed frame; a signed webhook says
 * "signature valid"; the page's own failure control makes FCM fail and the
 * retry shows in the delivery's attempts. Screenshots go to
 * `<data dir>/screenshots/` (CI keeps them as artifacts).
 */
import assert from "node:assert/strict";
import { startBrowser } from "./support/browser.ts";
import { adminSql, asService, createUser, stack } from "./support/stack.ts";

const INBOX = `http://127.0.0.1:${stack.ports.inbox}`;
const SHOTS = `${stack.dataDir}/screenshots`;
await Deno.mkdir(SHOTS, { recursive: true });

const api = (path: string, token: string, init: RequestInit = {}) =>
  fetch(`${stack.apiUrl}/functions/v1/${path}`, {
    ...init,
    headers: {
      apikey: token === stack.serviceRoleKey ? stack.serviceRoleKey : stack.anonKey,
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
  }).then(async (r) => ({ status: r.status, body: await r.json() }));

/** Runs `work` with a fresh browser page on the inbox. */
async function withInbox(
  work: (
    page: Awaited<ReturnType<Awaited<ReturnType<typeof startBrowser>>["page"]>>,
  ) => Promise<void>,
) {
  const browser = await startBrowser();
  try {
    const page = await browser.page();
    await page.goto(INBOX);
    await page.waitFor("document.getElementById('live').textContent === 'live'", "the live stream");
    await work(page);
  } finally {
    await browser.close();
  }
}

Deno.test("inbox in Chromium: register a device, notify, and the card appears live with its title and body", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "browser");
    await withInbox(async (page) => {
      const token = `browser-${crypto.randomUUID()}`;
      const device = await api("notify/devices", user.token, {
        method: "PUT",
        body: JSON.stringify({ token, platform: "android" }),
      });
      assert.ok([200, 201].includes(device.status), JSON.stringify(device.body));
      const title = `Order ${crypto.randomUUID().slice(0, 6)} shipped`;
      const sent = await api("notify", user.token, {
        method: "POST",
        body: JSON.stringify({
          user_ids: [user.id],
          title,
          body: "On its way",
          data: { order: "42" },
        }),
      });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
      const card = await page.waitFor<{ body: string; group: string; platform: string }>(
        `(() => {
          const card = [...document.querySelectorAll("article.card")]
            .find((c) => c.querySelector(".title").textContent === ${JSON.stringify(title)});
          return card && {
            body: card.querySelector(".body").textContent,
            group: card.closest(".group").querySelector(".group-head").textContent,
            platform: card.className,
          };
        })()`,
        "the push card",
      );
      assert.equal(card.body, "On its way");
      assert.match(card.platform, /android/);
      assert.ok(card.group.includes(user.email), card.group);
      await page.screenshot(`${SHOTS}/inbox-push.png`);
    });
  } finally {
    await sql.end();
  }
});

Deno.test("inbox in Chromium: an HTML e-mail renders inside its sandboxed frame", async () => {
  await withInbox(async (page) => {
    const subject = `Receipt ${crypto.randomUUID().slice(0, 6)}`;
    const sent = await api("notify", stack.serviceRoleKey, {
      method: "POST",
      body: JSON.stringify({
        targets: [{ channel: "email", address: "browser@example.test" }],
        channels: ["email"],
        title: subject,
        body: "Thanks",
        overrides: {
          email: { subject, html: "<h1>Thanks for your order</h1><p>It ships today.</p>" },
        },
      }),
    });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    await page.evaluate(`(() => {
      const f = document.getElementById("filters");
      f.channel.value = "email";
      f.dispatchEvent(new Event("input"));
    })()`);
    const { sandbox } = await page.waitFor<{ sandbox: string | null }>(
      `(() => {
        const frame = [...document.querySelectorAll("article.mail")].find((m) =>
          m.querySelector(".subject").textContent === ${
        JSON.stringify(subject)
      })?.querySelector("iframe");
        return frame && { sandbox: frame.getAttribute("sandbox") };
      })()`,
      "the e-mail",
    );
    assert.equal(sandbox, "", "the frame is sandboxed with nothing allowed");
    const headings: string[] = [];
    for (const frame of await page.childFrames()) {
      headings.push(
        await page.evaluate<string>("document.querySelector('h1')?.textContent ?? ''", frame),
      );
    }
    assert.ok(headings.includes("Thanks for your order"), JSON.stringify(headings));
    await page.screenshot(`${SHOTS}/inbox-email.png`);
  });
});

/** The verdict chip of the webhook whose body includes `text` and not `not`, once checked. */
const verdictOf = (text: string, not = "\u0000") =>
  `(() => {
    const hook = [...document.querySelectorAll("article.hook")].find((h) => {
      const payload = h.querySelector(".payload").textContent;
      return payload.includes(${JSON.stringify(text)}) && !payload.includes(${JSON.stringify(not)});
    });
    const text = hook?.querySelector(".signature").textContent;
    return text && !text.includes("checking") ? text : undefined;
  })()`;

Deno.test("inbox in Chromium: a signed webhook shows its signature valid, and a tampered copy invalid", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "browser-hook");
    const url = `${stack.fakes.webhook}/browser/${crypto.randomUUID()}`;
    await asService(
      sql,
      (tx) => tx`select * from herald.create_webhook_endpoint(${url}, ${user.id})`,
    );
    await withInbox(async (page) => {
      const title = `Hook ${crypto.randomUUID().slice(0, 6)}`;
      const sent = await api("notify", stack.serviceRoleKey, {
        method: "POST",
        body: JSON.stringify({ user_ids: [user.id], title, channels: ["webhook"] }),
      });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
      const verdict = await page.waitFor<string>(verdictOf(title, "tampered"), "the verdict");
      assert.match(verdict, /^signature valid: signed with the endpoint's current secret$/);
      await page.screenshot(`${SHOTS}/inbox-webhook.png`);

      // The same request again with one word of its body changed, as an attacker would send it.
      const { requests } = await fetch(`${stack.fakes.webhook}/_control/requests`).then((r) =>
        r.json()
      );
      const original = requests.find((r: { raw: string }) => r.raw.includes(title));
      assert.ok(original, "the stand-in recorded the webhook");
      const { host: _host, "content-length": _length, ...headers } = original.headers;
      const replayed = await fetch(url, {
        method: "POST",
        headers,
        body: original.raw.replace(title, `${title} tampered`),
      });
      await replayed.body?.cancel();
      const tampered = await page.waitFor<string>(verdictOf(`${title} tampered`), "its verdict");
      assert.match(tampered, /^signature invalid: no signature matches the endpoint's secrets$/);
      await page.screenshot(`${SHOTS}/inbox-webhook-tampered.png`);
    });
  } finally {
    await sql.end();
  }
});

Deno.test("inbox in Chromium: the FCM failure control makes a push fail, and its delivery shows the retry", async () => {
  await withInbox(async (page) => {
    const apply = (mode: string, value: string) =>
      page.evaluate(`(() => {
        const form = document.querySelector("form[data-fake=fcm]");
        form.elements.mode.value = ${JSON.stringify(mode)};
        form.elements.value.value = ${JSON.stringify(value)};
        form.requestSubmit();
      })()`);
    await apply("fcm_error", "UNAVAILABLE");
    await page.waitFor(
      "document.getElementById('control-result').textContent === 'fcm: fcm_error'",
      "the control to apply",
    );
    try {
      const token = `browser-fail-${crypto.randomUUID()}`;
      const sent = await api("notify", stack.serviceRoleKey, {
        method: "POST",
        body: JSON.stringify({
          targets: [{ channel: "push", token, platform: "ios" }],
          title: "During the outage",
        }),
      });
      assert.equal(sent.status, 201);
      const chip = await page.waitFor<string>(
        `document.querySelector('[data-device=${JSON.stringify(token)}] .chip.bad')?.textContent`,
        "the failed card",
      );
      assert.equal(chip, "stand-in answered 503");
      await page.evaluate(
        `document.querySelector('[data-device=${
          JSON.stringify(token)
        }] .delivery').closest("details").open = true`,
      );
      const outcome = await page.waitFor<string>(
        `document.querySelector('[data-device=${
          JSON.stringify(token)
        }] .attempts .outcome')?.textContent`,
        "the attempts",
      );
      assert.equal(outcome, "retry");
      const error = await page.evaluate<string>(
        `document.querySelector('[data-device=${
          JSON.stringify(token)
        }] .attempts td.error')?.textContent`,
      );
      assert.match(error, /^UNAVAILABLE: /);
      await page.screenshot(`${SHOTS}/inbox-retry.png`);
    } finally {
      await apply("normal", "");
      await page.waitFor(
        "document.getElementById('control-result').textContent === 'fcm: normal'",
        "FCM back to normal",
      );
    }
  });
});

Deno.test("API reference in Chromium: Swagger UI lists notify's routes from its own document, and try-it reaches the local stack", async () => {
  const browser = await startBrowser();
  try {
    const page = await browser.page();
    await page.goto(`${INBOX}/reference`);
    const paths = await page.waitFor<string[]>(
      `(() => {
        const paths = [...document.querySelectorAll(".opblock-summary-path")]
          .map((p) => p.getAttribute("data-path") ?? p.textContent);
        return paths.length > 5 && paths;
      })()`,
      "the notify operations",
    );
    for (
      const path of ["/notify", "/notify/bulk", "/notify/devices", "/notify/notifications/{id}"]
    ) {
      assert.ok(paths.some((p) => p.replace(/\u200b/g, "") === path), `${path} in ${paths}`);
    }
    await page.screenshot(`${SHOTS}/reference.png`);
    // Try it: the health document, GET /health, executed through the inbox's proxy.
    await page.evaluate(`(() => {
      const select = document.querySelector(".topbar select");
      select.value = [...select.options].find((o) => o.textContent === "health").value;
      select.dispatchEvent(new Event("change", { bubbles: true }));
    })()`);
    await page.waitFor(
      `[...document.querySelectorAll(".opblock-summary-path")].some((p) => (p.getAttribute("data-path") ?? p.textContent).replace(/\\u200b/g, "") === "/health/ready")`,
      "the health operations",
    );
    await page.evaluate(`(() => {
      const block = [...document.querySelectorAll(".opblock")].find((b) =>
        (b.querySelector(".opblock-summary-path").getAttribute("data-path") ?? "").replace(/\\u200b/g, "") === "/health");
      (block.querySelector(".opblock-summary-control") ?? block.querySelector(".opblock-summary")).click();
    })()`);
    await page.waitFor(
      `Boolean(document.querySelector(".opblock.is-open .try-out__btn, .opblock.is-open .execute"))`,
      "the operation to open",
    );
    // tryItOutEnabled opens the form at once; a "Try it out" button, where shown, opens it.
    await page.evaluate(`(() => {
      const button = document.querySelector(".opblock.is-open .try-out__btn");
      if (button && !button.classList.contains("cancel")) button.click();
    })()`);
    await page.waitFor(
      `Boolean(document.querySelector(".opblock.is-open .execute"))`,
      "the execute button",
    );
    await page.evaluate(`document.querySelector(".opblock.is-open .execute").click()`);
    const status = await page.waitFor<string>(
      `document.querySelector(".opblock.is-open .live-responses-table tr.response .response-col_status")?.textContent.trim()`,
      "the live response",
    );
    assert.equal(status, "200");
    const body = await page.evaluate<string>(
      `document.querySelector(".opblock.is-open .live-responses-table tr.response .response-col_description pre")?.textContent ?? ""`,
    );
    assert.match(body, /"status":\s*"ok"/);
  } finally {
    await browser.close();
  }
});

Deno.test("inbox in Chromium: each filter on its own (user, device, text) narrows the cards; the replay button answers", async () => {
  const sql = adminSql();
  try {
    const [ann, ben] = [await createUser(sql, "filter-ann"), await createUser(sql, "filter-ben")];
    const tokens = [`filter-${crypto.randomUUID()}`, `filter-${crypto.randomUUID()}`];
    await sql`insert into herald.device_tokens (user_id, token, platform)
      values (${ann.id}, ${tokens[0]}, 'android'), (${ben.id}, ${tokens[1]}, 'web')`;
    const marker = crypto.randomUUID().slice(0, 8);
    for (const [user, word] of [[ann, "apples"], [ben, "bananas"]] as const) {
      const sent = await api("notify", stack.serviceRoleKey, {
        method: "POST",
        body: JSON.stringify({ user_ids: [user.id], title: `${marker} ${word}` }),
      });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
    }
    await withInbox(async (page) => {
      const shown = (field: string, value: string) =>
        page.evaluate<string[]>(`(async () => {
          const f = document.getElementById("filters");
          for (const name of ["user", "device", "text"]) f.elements[name].value = "";
          f.elements[${JSON.stringify(field)}].value = ${JSON.stringify(value)};
          f.dispatchEvent(new Event("input"));
          await new Promise((r) => setTimeout(r, 200));
          return [...document.querySelectorAll("article.card .title")]
            .filter((t) => t.checkVisibility())
            .map((t) => t.textContent).filter((t) => t.startsWith(${JSON.stringify(marker)}));
        })()`);
      await page.waitFor(
        `[...document.querySelectorAll("article.card .title")].filter((t) => t.textContent.startsWith(${
          JSON.stringify(marker)
        })).length === 2`,
        "both cards",
      );
      assert.deepEqual(await shown("user", ann.email), [`${marker} apples`]);
      assert.deepEqual(await shown("device", tokens[1]), [`${marker} bananas`]);
      assert.deepEqual(await shown("text", "BANANAS"), [`${marker} bananas`], "case-insensitive");
      assert.deepEqual((await shown("text", "")).sort(), [`${marker} apples`, `${marker} bananas`]);

      await page.evaluate(`document.getElementById("replay").click()`);
      const result = await page.waitFor<string>(
        `(() => { const t = document.getElementById("control-result").textContent; return t.startsWith("replayed") && t; })()`,
        "the replay's answer",
      );
      assert.match(result, /^replayed \d+ dead letter\(s\)$/);
    });
  } finally {
    await sql.end();
  }
});

Deno.test("inbox in Chromium: with a full inbox (1,500 more webhooks) the page loads, a new push still appears live, and a screenshot is taken", async () => {
  const marker = crypto.randomUUID().slice(0, 8);
  for (let i = 0; i < 1_500; i += 50) {
    await Promise.all(
      Array.from(
        { length: 50 },
        (_, j) =>
          fetch(`${stack.fakes.webhook}/full-inbox/${marker}/${i + j}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ n: i + j, note: "filler ".repeat(50) }),
          }).then((r) => r.body?.cancel()),
      ),
    );
  }
  await withInbox(async (page) => {
    await page.waitFor(
      `document.querySelectorAll("article.hook").length >= 1500`,
      "the 1,500 webhooks",
    );
    const title = `After the flood ${marker}`;
    const sent = await api("notify", stack.serviceRoleKey, {
      method: "POST",
      body: JSON.stringify({
        targets: [{ channel: "push", token: `full-${marker}`, platform: "web" }],
        title,
      }),
    });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    await page.waitFor(
      `[...document.querySelectorAll("article.card .title")].some((t) => t.textContent === ${
        JSON.stringify(title)
      })`,
      "the new card",
    );
    await page.screenshot(`${SHOTS}/inbox-full.png`);
    const { size } = await Deno.stat(`${SHOTS}/inbox-full.png`);
    assert.ok(size > 0);
  });
});
