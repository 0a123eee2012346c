// The inbox page: items from /api/items, then live from /api/events. Every
// value from a payload goes in with textContent or a checked attribute, never
// as HTML (a push title is data, not markup); e-mail HTML goes in a sandboxed
// frame with no scripts.
"use strict";

const items = new Map();

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

const time = (at) => new Date(at).toLocaleTimeString();
const safeImage = (url) =>
  typeof url === "string" && /^(https?:|data:image\/)/.test(url) ? url : undefined;
const short = (token) => token.length > 24 ? `${token.slice(0, 12)}…${token.slice(-8)}` : token;

function chips(item) {
  const list = [];
  if (item.validateOnly) {
    list.push(el("span", { class: "chip" }, "validate_only: not shown on the device"));
  }
  if (item.badge !== undefined) list.push(el("span", { class: "chip" }, `badge ${item.badge}`));
  if (item.sound) list.push(el("span", { class: "chip" }, `sound ${item.sound}`));
  if (item.status && item.status >= 400) {
    list.push(el("span", { class: "chip bad" }, `stand-in answered ${item.status}`));
  }
  return list.length ? el("div", { class: "chips" }, list) : undefined;
}

function deliveryDetails(item) {
  const box = el("div", { class: "delivery" });
  const details = el(
    "details",
    {
      ontoggle: async (event) => {
        if (!event.target.open || box.dataset.loaded) return;
        box.dataset.loaded = "1";
        box.textContent = "loading…";
        const response = await fetch(`/api/items/${item.id}/delivery`);
        renderDelivery(box, await response.json());
      },
    },
    el("summary", {}, "delivery in Herald"),
    box,
  );
  return details;
}

function renderDelivery(box, answer) {
  box.textContent = "";
  if (!answer.found) {
    box.append(el("p", { class: "meta" }, `no delivery found (matched by ${answer.matched_by})`));
    return;
  }
  const d = answer.delivery;
  box.append(
    el(
      "p",
      { class: "meta" },
      el("span", { class: "delivery-status" }, `status ${d.status}`),
      ` · ${d.attempts} attempt(s) · delivery ${d.id} · request ${d.request_id ?? "-"} · `,
      el("code", {}, answer.status_url),
      ` (matched by ${answer.matched_by})`,
    ),
    el(
      "table",
      { class: "attempts" },
      el(
        "tr",
        {},
        ["#", "outcome", "status", "latency ms", "at"].map((h) => el("th", {}, h)),
      ),
      // The error, often a sentence, gets a row of its own under its attempt.
      answer.attempts.flatMap((a) => {
        const error = [a.error_code, a.error].filter(Boolean).join(": ");
        return [
          el(
            "tr",
            {},
            el("td", {}, a.attempt),
            el("td", { class: "outcome" }, a.outcome),
            el("td", {}, a.status_code ?? ""),
            el("td", {}, a.latency_ms ?? ""),
            el("td", {}, time(a.at)),
          ),
          ...(error ? [el("tr", {}, el("td", { class: "error", colspan: "5" }, error))] : []),
        ];
      }),
    ),
  );
}

function pushCard(item) {
  const image = safeImage(item.image);
  const app = {
    android: "Your app · now",
    ios: "YOUR APP",
    web: "127.0.0.1 · Chrome",
    topic: `FCM fan-out to ${item.to}`,
  }[item.platform];
  return el(
    "article",
    { class: `card ${item.platform}`, "data-id": item.id },
    el("div", { class: "app" }, app, ` · ${time(item.at)}`),
    el("div", { class: "title" }, item.title ?? ""),
    el("div", { class: "body" }, item.body ?? ""),
    image && el("img", { class: "picture", src: image, alt: "" }),
    chips(item),
    Object.keys(item.data).length
      ? el(
        "details",
        {},
        el("summary", {}, `data (${Object.keys(item.data).length})`),
        el("pre", {}, JSON.stringify(item.data, null, 2)),
      )
      : undefined,
    el(
      "details",
      {},
      el("summary", {}, "FCM message"),
      el("pre", {}, JSON.stringify(item.message, null, 2)),
    ),
    deliveryDetails(item),
  );
}

function emailCard(item) {
  const frame = el("iframe", {
    sandbox: "",
    title: `e-mail: ${item.subject}`,
    referrerpolicy: "no-referrer",
  });
  frame.srcdoc = item.html ?? "";
  const headers = Object.entries(item.headers).map(([k, v]) =>
    `${k}: ${k === "authorization" ? "Bearer …" : v}`
  ).join("\n");
  return el(
    "article",
    { class: "mail", "data-id": item.id },
    el("div", { class: "subject title" }, item.subject),
    el("div", { class: "meta" }, `from ${item.from} to ${item.to.join(", ")} · ${time(item.at)}`),
    el("div", { class: "meta" }, `idempotency key ${item.deliveryId ?? "-"}`),
    chips(item),
    item.html ? frame : undefined,
    item.text
      ? el(
        "details",
        { open: !item.html },
        el("summary", {}, "text alternative"),
        el("pre", {}, item.text),
      )
      : undefined,
    el("details", {}, el("summary", {}, "headers"), el("pre", {}, headers)),
    deliveryDetails(item),
  );
}

// Signature checks wait their turn, two at a time and newest first: a page
// opened on 2,000 webhooks would otherwise queue 2,000 requests ahead of its
// event stream (a browser opens six connections to a host) and of new items.
const checks = [];
let checking = 0;
function check(work) {
  checks.push(work);
  drainChecks();
}
function drainChecks() {
  while (checking < 2 && checks.length) {
    checking++;
    checks.pop()().finally(() => {
      checking--;
      drainChecks();
    });
  }
}

function webhookCard(item) {
  const verdict = el("span", { class: "chip signature" }, "signature: checking…");
  check(() =>
    fetch(`/api/items/${item.id}/delivery`).then((r) => r.json()).then((answer) => {
      const s = answer.signature;
      if (!s) verdict.textContent = "signature: no delivery found";
      else {
        verdict.textContent = `signature ${s.verdict}: ${s.reason}`;
        verdict.className = `chip signature ${s.verdict === "valid" ? "good" : "bad"}`;
      }
    }).catch(() => (verdict.textContent = "signature: could not check"))
  );
  let body = item.body;
  try {
    body = JSON.stringify(JSON.parse(item.body), null, 2);
  } catch {
    // not JSON: as received
  }
  return el(
    "article",
    { class: "hook", "data-id": item.id },
    el("div", { class: "title" }, `${item.method} ${item.path}`),
    el("div", { class: "meta" }, `webhook-id ${item.deliveryId ?? "-"} · ${time(item.at)}`),
    el("div", { class: "chips" }, verdict),
    chips(item),
    el("pre", { class: "payload" }, body),
    el(
      "details",
      {},
      el("summary", {}, "headers"),
      el("pre", {}, Object.entries(item.headers).map(([k, v]) => `${k}: ${v}`).join("\n")),
    ),
    deliveryDetails(item),
  );
}

function matches(item, f) {
  if (f.channel && item.kind !== f.channel) return false;
  if (
    f.user && !(item.user ?? "").toLowerCase().includes(f.user) &&
    !(item.to ?? []).toString().toLowerCase().includes(f.user)
  ) return false;
  if (f.device && !(item.kind === "push" && item.to.toLowerCase().includes(f.device))) return false;
  if (f.text) {
    const text = [
      item.title,
      item.body,
      item.subject,
      item.text,
      item.body && typeof item.body === "string" ? item.body : "",
    ]
      .filter(Boolean).join(" ").toLowerCase();
    if (!text.includes(f.text)) return false;
  }
  return true;
}

// Each item's element is made once and kept: a new item is put in at the top,
// and filtering hides and shows. Redrawing everything for every arrival made a
// full inbox (2,000 items) take seconds per new item, re-checked every
// webhook's signature, reloaded every e-mail frame and closed whatever the
// reader had opened.
const MAX_SHOWN = 2000; // as many as the server keeps
const nodes = new Map(); // item id → its element
const groups = new Map(); // device token and user → { element, cards } (pushes)
const groupKey = (item) => `${item.to}\n${item.user ?? ""}`;
const makers = { push: pushCard, email: emailCard, webhook: webhookCard };

function filters() {
  const form = new FormData(document.getElementById("filters"));
  return Object.fromEntries([...form].map(([k, v]) => [k, String(v).trim().toLowerCase()]));
}

/** Puts `item` at the top of its list (its device's group at the top of the pushes). */
function add(item, f = filters()) {
  if (items.has(item.id)) return;
  items.set(item.id, item);
  const node = makers[item.kind](item);
  node.hidden = !matches(item, f);
  nodes.set(item.id, node);
  if (item.kind === "push") {
    let group = groups.get(groupKey(item));
    if (!group) {
      const cards = el("div", { class: "cards" });
      const element = el(
        "div",
        { class: "group", "data-device": item.to },
        el(
          "div",
          { class: "group-head" },
          `${item.platform} · ${short(item.to)}${item.user ? ` · ${item.user}` : ""}`,
        ),
        cards,
      );
      group = { element, cards };
      groups.set(groupKey(item), group);
    }
    group.cards.prepend(node);
    document.querySelector("#push .groups").prepend(group.element);
    showGroup(group);
  } else {
    document.querySelector(`#${item.kind} .list`).prepend(node);
  }
  // The oldest go, as on the server (a Map keeps insertion order: oldest first).
  for (const id of items.keys()) {
    if (items.size <= MAX_SHOWN) break;
    remove(id);
  }
}

function remove(id) {
  const item = items.get(id);
  items.delete(id);
  nodes.get(id)?.remove();
  nodes.delete(id);
  const group = item?.kind === "push" ? groups.get(groupKey(item)) : undefined;
  if (group && !group.cards.firstChild) {
    group.element.remove();
    groups.delete(groupKey(item));
  }
}

/** A device's group shows while one of its cards does. */
function showGroup(group) {
  group.element.hidden = ![...group.cards.children].some((card) => !card.hidden);
}

/** Applies the filters to every item. */
function refilter() {
  const f = filters();
  for (const [id, item] of items) nodes.get(id).hidden = !matches(item, f);
  for (const group of groups.values()) showGroup(group);
  for (const kind of ["push", "email", "webhook"]) {
    document.getElementById(kind).classList.toggle(
      "hidden",
      Boolean(f.channel) && f.channel !== kind,
    );
  }
}

function controls() {
  const result = document.getElementById("control-result");
  const forms = ["fcm", "email", "webhook"].map((fake) => {
    const modes = [
      "normal",
      "slow",
      "fail",
      "rate_limited",
      ...(fake === "fcm" ? ["fcm_error"] : []),
    ];
    const form = el(
      "form",
      { "data-fake": fake },
      el("strong", {}, { fcm: "FCM", email: "e-mail API", webhook: "webhook receiver" }[fake]),
      el("select", { name: "mode" }, modes.map((m) => el("option", { value: m }, m))),
      el("input", { name: "value", placeholder: "ms / status / code / s" }),
      el("button", { type: "submit" }, "apply"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const mode = form.mode.value;
      const value = form.value.value.trim();
      const body = { mode };
      if (mode === "slow") body.latency_ms = Number(value || 3000);
      if (mode === "fail") body.status = Number(value || 500);
      if (mode === "rate_limited") body.retry_after = Number(value || 30);
      if (mode === "fcm_error") body.fcm_error = value || "UNAVAILABLE";
      const response = await fetch(`/api/control/${fake}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      result.textContent = response.ok ? `${fake}: ${mode}` : `${fake}: ${answer.detail}`;
    });
    return form;
  });
  document.getElementById("control-forms").replaceChildren(...forms);
  document.getElementById("replay").addEventListener("click", async () => {
    const response = await fetch("/api/replay", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const answer = await response.json();
    result.textContent = response.ok
      ? `replayed ${answer.replayed ?? 0} dead letter(s)`
      : `replay: ${answer.detail ?? answer.title ?? response.status}`;
  });
}

async function start() {
  controls();
  document.getElementById("filters").addEventListener("input", refilter);
  const { items: initial, last } = await (await fetch("/api/items")).json();
  const f = filters();
  for (const item of initial.reverse()) add(item, f); // oldest first: each goes on top
  refilter();
  const live = document.getElementById("live");
  // From the list's last item on: what arrives meanwhile comes in the stream, and a
  // reconnecting stream resumes from its Last-Event-ID.
  const events = new EventSource(`/api/events?after=${last}`);
  events.addEventListener("open", () => {
    live.textContent = "live";
    live.classList.add("on");
  });
  events.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.classList.remove("on");
  });
  events.addEventListener("item", (event) => add(JSON.parse(event.data)));
  events.addEventListener("reset", (event) => {
    const { kind } = JSON.parse(event.data);
    for (const [id, item] of items) if (item.kind === kind) remove(id);
  });
}

start();
