import assert from "node:assert/strict";
import {
  checkDestination,
  denoResolver,
  isPublicAddress,
  normaliseAllowedHost,
  normaliseHost,
  type Resolve,
} from "../supabase/functions/_shared/net/ssrf_guard.ts";

const addresses: [string, boolean, string][] = [
  ["8.8.8.8", true, "public IPv4"],
  ["93.184.215.14", true, "public IPv4"],
  ["0.0.0.0", false, "this network"],
  ["0.255.255.255", false, "this network"],
  ["10.0.0.5", false, "private 10/8"],
  ["100.63.255.255", true, "just below CGNAT"],
  ["100.64.0.0", false, "CGNAT"],
  ["100.127.255.255", false, "CGNAT"],
  ["100.128.0.0", true, "just above CGNAT"],
  ["127.0.0.1", false, "loopback"],
  ["127.255.255.254", false, "loopback"],
  ["169.254.169.254", false, "cloud metadata"],
  ["172.15.255.255", true, "just below 172.16/12"],
  ["172.16.0.0", false, "private 172.16/12"],
  ["172.31.255.255", false, "private 172.16/12"],
  ["172.32.0.0", true, "just above 172.16/12"],
  ["192.0.0.8", false, "IETF protocol assignments"],
  ["192.0.1.1", true, "public"],
  ["192.0.2.1", false, "documentation"],
  ["192.168.1.1", false, "private 192.168/16"],
  ["198.17.255.255", true, "just below benchmarking"],
  ["198.18.0.1", false, "benchmarking"],
  ["198.19.255.255", false, "benchmarking"],
  ["198.20.0.0", true, "just above benchmarking"],
  ["223.255.255.255", true, "last unicast"],
  ["224.0.0.1", false, "multicast"],
  ["239.255.255.250", false, "multicast"],
  ["240.0.0.1", false, "reserved"],
  ["255.255.255.255", false, "broadcast"],
  ["2606:4700:4700::1111", true, "public IPv6"],
  ["2a00:1450:4001:80b::200e", true, "public IPv6"],
  ["::", false, "unspecified"],
  ["::1", false, "IPv6 loopback"],
  ["0:0:0:0:0:0:0:1", false, "IPv6 loopback, uncompressed"],
  ["fc00::1", false, "unique local"],
  ["fd12:3456:789a::1", false, "unique local"],
  ["fe80::1", false, "link-local"],
  ["febf:ffff::1", false, "link-local, top of the range"],
  ["fec0::1", false, "site-local"],
  ["ff02::1", false, "multicast"],
  ["2001:db8::1", false, "documentation"],
  ["100::1", false, "discard-only"],
  ["::ffff:127.0.0.1", false, "IPv4-mapped loopback"],
  ["::ffff:7f00:1", false, "IPv4-mapped loopback, hex"],
  ["::ffff:169.254.169.254", false, "IPv4-mapped metadata"],
  ["::ffff:8.8.8.8", true, "IPv4-mapped public"],
  ["::127.0.0.1", false, "IPv4-compatible"],
  ["64:ff9b::10.0.0.1", false, "NAT64 of a private address"],
  ["64:ff9b::a9fe:a9fe", false, "NAT64 of the metadata address"],
  ["64:ff9b::808:808", true, "NAT64 of a public address"],
  ["64:ff9b:1::8.8.8.8", false, "local-use NAT64"],
  ["2002:a00:1::1", false, "6to4 of 10.0.0.1"],
  ["2002:7f00:1::", false, "6to4 of 127.0.0.1"],
  ["2002:808:808::1", true, "6to4 of 8.8.8.8"],
  ["4000::1", false, "outside global unicast"],
  ["", false, "empty"],
  ["not-an-ip", false, "a name"],
  ["1.2.3", false, "three parts"],
  ["256.1.1.1", false, "octet out of range"],
  ["010.0.0.1", false, "octal-looking octet"],
  ["1::2::3", false, "two ::"],
  ["1:2:3:4:5:6:7:8:9", false, "nine groups"],
  ["::ffff:1.2.3.999", false, "bad IPv4 tail"],
  ["fe80::1%eth0", false, "zone id"],
];

for (const [ip, expected, why] of addresses) {
  Deno.test(`isPublicAddress() says ${expected} for ${ip || "''"} (${why})`, () => {
    assert.equal(isPublicAddress(ip), expected);
  });
}

/** A resolver that answers from a table and counts its calls. */
function tableResolver(answers: Record<string, string[] | Error>) {
  const calls: string[] = [];
  const resolve: Resolve = (hostname) => {
    calls.push(hostname);
    const answer = answers[hostname];
    if (answer instanceof Error) return Promise.reject(answer);
    return Promise.resolve(answer ?? []);
  };
  return { resolve, calls };
}

const { resolve } = tableResolver({
  "hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
  "internal.example.com": ["10.0.0.5"],
  "mixed.example.com": ["93.184.215.14", "10.0.0.5"],
  "mapped.example.com": ["::ffff:169.254.169.254"],
  "empty.example.com": [],
  "broken.example.com": new Error("connection refused"),
});

const destinations: [string, "allowed" | "blocked" | "unresolved", string?][] = [
  ["https://hooks.example.com/herald", "allowed"],
  ["http://hooks.example.com:8080/herald", "allowed"],
  ["https://8.8.8.8/hook", "allowed"],
  ["https://[2606:4700:4700::1111]/hook", "allowed"],
  ["ftp://hooks.example.com/", "blocked", "ftp:"],
  ["file:///etc/passwd", "blocked", "file:"],
  ["javascript:alert(1)", "blocked", "javascript:"],
  ["not a url", "blocked", "not a valid URL"],
  ["https://user:pass@hooks.example.com/", "blocked", "credentials"],
  ["https://user@hooks.example.com/", "blocked", "credentials"],
  ["http://127.0.0.1/", "blocked", "127.0.0.1 is not a public address (loopback)"],
  ["http://2130706433/", "blocked", "127.0.0.1"],
  ["http://0x7f.1/", "blocked", "127.0.0.1"],
  ["http://127.1:9000/", "blocked", "127.0.0.1"],
  ["http://[::1]:9000/", "blocked", "::1 is not a public address (loopback)"],
  ["http://[::ffff:127.0.0.1]/", "blocked", "IPv4-mapped 127.0.0.1"],
  ["http://169.254.169.254/latest/meta-data/", "blocked", "169.254.169.254"],
  ["http://0.0.0.0:8000/", "blocked", "0.0.0.0"],
  ["http://localhost:8000/", "blocked", "localhost is a loopback name"],
  ["http://LOCALHOST./", "blocked", "loopback name"],
  ["http://api.localhost/", "blocked", "loopback name"],
  ["http://metadata.google.internal/computeMetadata/v1/", "blocked", "cloud metadata"],
  ["http://METADATA.GOOGLE.INTERNAL./", "blocked", "cloud metadata"],
  ["http://metadata.goog/", "blocked", "cloud metadata"],
  ["http://instance-data.ec2.internal/", "blocked", "private-use name"],
  ["http://printer.local/", "blocked", "private-use name"],
  ["http://metadata/", "blocked", "single-label"],
  ["https://internal.example.com/", "blocked", "internal.example.com resolves to 10.0.0.5"],
  ["https://mixed.example.com/", "blocked", "mixed.example.com resolves to 10.0.0.5"],
  ["https://mapped.example.com/", "blocked", "IPv4-mapped 169.254.169.254"],
  ["https://empty.example.com/", "unresolved", "no A or AAAA records"],
  ["https://broken.example.com/", "unresolved", "connection refused"],
];

for (const [url, kind, reason] of destinations) {
  Deno.test(`checkDestination() finds ${url} ${kind}`, async () => {
    const destination = await checkDestination(url, { resolve });
    assert.equal(destination.kind, kind, JSON.stringify(destination));
    if (reason) {
      assert.match((destination as { reason: string }).reason, new RegExp(_escape(reason)));
    }
  });
}

Deno.test("checkDestination() lets allow-listed hosts through without resolving them", async () => {
  const { resolve, calls } = tableResolver({ "receiver.test": ["10.0.0.5"] });
  const allowHosts = new Set(["127.0.0.1", "::1", "localhost", "receiver.test"].map(normaliseHost));
  for (
    const url of [
      "http://127.0.0.1:8000/",
      "http://[::1]/",
      "http://LocalHost/",
      "http://receiver.test./",
    ]
  ) {
    const destination = await checkDestination(url, { allowHosts, resolve });
    assert.equal(destination.kind, "allowed", url);
  }
  assert.deepEqual(calls, []);
});

Deno.test("checkDestination() lets an allow-listed host:port through on that port only", async () => {
  const { resolve } = tableResolver({});
  const allowHosts = new Set(
    ["127.0.0.1:54329", "[::1]:8080", "receiver.test:443"].map(normaliseAllowedHost),
  );
  const cases: [string, string][] = [
    ["http://127.0.0.1:54329/hook", "allowed"],
    ["http://127.0.0.1:5432/", "blocked"],
    ["http://127.0.0.1/", "blocked"],
    ["http://[::1]:8080/", "allowed"],
    ["http://[::1]:8081/", "blocked"],
    ["https://receiver.test/", "allowed"],
    ["https://receiver.test:443/", "allowed"],
    ["http://receiver.test/", "unresolved"],
  ];
  for (const [url, kind] of cases) {
    const destination = await checkDestination(url, { allowHosts, resolve });
    assert.equal(destination.kind, kind, `${url}: ${JSON.stringify(destination)}`);
  }
});

Deno.test("normaliseAllowedHost() canonicalises host:port and refuses bad ports", () => {
  assert.equal(normaliseAllowedHost("127.0.0.1:05432"), "127.0.0.1:5432");
  assert.equal(normaliseAllowedHost("[0:0:0:0:0:0:0:1]:80"), "[::1]:80");
  assert.equal(normaliseAllowedHost("Receiver.Test:443"), "receiver.test:443");
  assert.equal(normaliseAllowedHost("::1"), "::1");
  assert.equal(normaliseAllowedHost("receiver.test"), "receiver.test");
  assert.throws(() => normaliseAllowedHost("127.0.0.1:0"), RangeError);
  assert.throws(() => normaliseAllowedHost("127.0.0.1:70000"), RangeError);
  assert.throws(() => normaliseAllowedHost("bad host:80"), RangeError);
});

Deno.test("checkDestination() refuses a name it cannot resolve when there is no resolver", async () => {
  const named = await checkDestination("https://hooks.example.com/", {});
  assert.equal(named.kind, "blocked");
  assert.match((named as { reason: string }).reason, /no DNS resolver/);
  const literal = await checkDestination("https://8.8.8.8/", {});
  assert.equal(literal.kind, "allowed");
});

Deno.test("normaliseHost() canonicalises names and IP literals and rejects non-hosts", () => {
  assert.equal(normaliseHost("Receiver.Test."), "receiver.test");
  assert.equal(normaliseHost("[::1]"), "::1");
  assert.equal(normaliseHost("0:0:0:0:0:0:0:1"), "::1");
  assert.equal(normaliseHost("127.1"), "127.0.0.1");
  assert.throws(() => normaliseHost("bad host"), RangeError);
});

Deno.test("denoResolver() resolves through Deno.resolveDns when the runtime has it", () => {
  assert.equal(typeof denoResolver(), "function");
});

function _escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test("why the guard cannot pin: fetch sends the URL's host, ignoring a Host header (revisit when this fails)", async () => {
  // Pinning would fetch http://<checked address>/… with Host: <name>. Deno's fetch
  // (here and on the edge runtime) replaces that header with the URL's host, so a
  // pinned request would reach the receiver under the wrong name; the guard checks
  // and fetch resolves again instead (ssrf_guard.ts, "What remains").
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => new Response(request.headers.get("host")),
  );
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/`, {
      headers: { host: "hooks.example.com" },
    });
    assert.equal(await response.text(), `127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
});
