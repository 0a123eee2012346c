/**
 * kong/kong.yml against Kong 3.9's schemas and Herald's rules: the rendered
 * configuration passes; each broken variant is refused with a message naming
 * its path; rendering substitutes every `$NAME`, refuses unset ones, splits
 * canary weight and swaps in an asymmetric Auth key; the README states its
 * rate limits.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { functionNames, houseRules } from "../scripts/kong/house_rules.ts";
import { KONG_TEMPLATE, renderKongConfig, templateNames } from "../scripts/kong/render.ts";
import { validateKongConfig } from "../scripts/kong/validate.ts";

const TEMPLATE = await Deno.readTextFile(KONG_TEMPLATE);
const FUNCTIONS = await functionNames();
const ENV: Record<string, string> = {
  HERALD_FUNCTIONS_STABLE: "functions:9000",
  HERALD_FUNCTIONS_CANARY: "functions-canary:9000",
  SUPABASE_ANON_KEY: "anon-legacy-key",
  SUPABASE_PUBLISHABLE_KEY: "sb_publishable_test",
  SUPABASE_SERVICE_KEY: "service-legacy-key",
  SUPABASE_SECRET_KEY: "sb_secret_test",
  SUPABASE_API_KEY_ISSUER: "supabase",
  SUPABASE_JWT_SECRET: "super-secret-jwt-token-with-at-least-32-characters-long",
  SUPABASE_AUTH_ISSUER: "https://project.supabase.co/auth/v1",
  HERALD_BACKEND_HMAC_SECRET: "backend-hmac-secret",
  HERALD_KONG_REDIS_HOST: "redis",
  HERALD_KONG_REDIS_PORT: "6379",
  HERALD_INTERNAL_CIDR: "10.0.0.0/8",
};
const PEM = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9
q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==
-----END PUBLIC KEY-----`;

// deno-lint-ignore no-explicit-any
type Config = any;
const rendered = (): Config => renderKongConfig(TEMPLATE, ENV, { canaryWeight: 10 }).config;
const service = (config: Config, name: string) =>
  config.services.find((s: Config) => s.name === name);
const plugin = (owner: Config, name: string) => owner.plugins.find((p: Config) => p.name === name);
const notifyRoute = (config: Config) => service(config, "herald-notify").routes[0];

Deno.test("kong.yml: the rendered configuration passes Kong 3.9's schemas and Herald's rules", () => {
  const config = rendered();
  assert.deepEqual(validateKongConfig(structuredClone(config)), []);
  assert.deepEqual(houseRules(config, parse(TEMPLATE), FUNCTIONS), []);
});

// An RSA public key whose DER body is cut short: PEM-shaped, but OpenSSL cannot read it.
const BROKEN_RSA = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo
-----END PUBLIC KEY-----`;

const BROKEN: [string, (config: Config) => void, RegExp][] = [
  [
    "a route regex with a look-ahead (the ATC router's regex engine has none)",
    (c) => notifyRoute(c).paths = ["~/functions/v1/notify(?!/admin)"],
    /routes\[0\]\(herald-notify\)\.paths\[0\]: invalid regex: .*no look-around/,
  ],
  [
    "a route regex with a back-reference",
    (c) => notifyRoute(c).paths = ["~/functions/v1/(a)\\1"],
    /paths\[0\]: invalid regex: .*no back-references/,
  ],
  [
    "a route regex with an escape the router does not know",
    (c) => notifyRoute(c).paths = ["~/functions/v1/notify\\q"],
    /paths\[0\]: invalid regex: .*unknown escape \\q/,
  ],
  [
    "a cors origin with an escape PCRE does not know",
    (c) => plugin(notifyRoute(c), "cors").config.origins = ["https://app\\q.example.com"],
    /\(cors\)\.config\.origins\[0\]: .* is not a valid regex/,
  ],
  [
    "a cors origin that is not a valid regex",
    (c) => plugin(notifyRoute(c), "cors").config.origins = ["https://(app.example.com"],
    /\(cors\)\.config\.origins\[0\]: 'https:\/\/\(app\.example\.com' is not a valid regex/,
  ],
  [
    "an upstream name that is not a host name",
    (c) => {
      c.upstreams[0].name = "herald functions";
      for (const s of c.services) s.host = "herald functions";
    },
    /upstreams\[0\]\(herald functions\)\.name: invalid value: herald functions/,
  ],
  [
    "a key-auth key name with a dot",
    (c) => plugin(notifyRoute(c), "key-auth").config.key_names = ["api.key"],
    /\(key-auth\)\.config\.key_names\[0\]: bad header name 'api\.key'/,
  ],
  [
    "an RS256 key OpenSSL cannot parse",
    (c) => {
      const authenticated = c.consumers.find((x: Config) => x.username === "authenticated");
      authenticated.jwt_secrets[0] = {
        key: "issuer",
        algorithm: "RS256",
        rsa_public_key: BROKEN_RSA,
      };
    },
    /jwt_secrets\[0\]\.rsa_public_key: invalid key: it does not parse/,
  ],
  [
    "snis on a route that only speaks http",
    (c) => {
      notifyRoute(c).protocols = ["http"];
      notifyRoute(c).snis = ["api.example.com"];
    },
    /routes\[0\]\(herald-notify\)\.snis: 'snis' can only be set when 'protocols' is/,
  ],
  [
    "an unknown field",
    (c) => plugin(notifyRoute(c), "rate-limiting").config.minutes = 5,
    /routes\[0\]\(herald-notify\)\.plugins\[\d\]\(rate-limiting\)\.config\.minutes: unknown field/,
  ],
  [
    "claims_to_verify: [iat]",
    (c) => plugin(notifyRoute(c), "jwt").config.claims_to_verify = ["iat"],
    /routes\[0\]\(herald-notify\)\.plugins\[\d\]\(jwt\)\.config\.claims_to_verify\[0\]: expected one of: exp, nbf/,
  ],
  [
    "a target weight of 70000",
    (c) => c.upstreams[0].targets[1].weight = 70000,
    /upstreams\[0\]\(herald-functions\)\.targets\[1\]\.weight: value should be between 0 and 65535/,
  ],
  [
    "policy: cluster (DB-less)",
    (c) => plugin(notifyRoute(c), "rate-limiting").config.policy = "cluster",
    /\(rate-limiting\)\.config\.policy: expected one of: local, redis/,
  ],
  [
    "a redis policy without redis.host",
    (c) => delete plugin(service(c, "herald-health"), "rate-limiting").config.redis.host,
    /services\[4\]\(herald-health\)\.plugins\[\d\]\(rate-limiting\)\.config\.redis\.host: required when config\.policy == redis/,
  ],
  [
    "a plugin Kong does not bundle",
    (c) => c.plugins.push({ name: "herald-magic" }),
    /plugins\[1\]\(herald-magic\)\.name: plugin 'herald-magic' not enabled/,
  ],
  [
    "a string where a number belongs",
    (c) => plugin(notifyRoute(c), "rate-limiting").config.minute = "1000",
    /config\.minute: expected a number/,
  ],
  [
    "a longer period allowing less than a shorter one",
    (c) => plugin(notifyRoute(c), "rate-limiting").config.hour = 500,
    /config\.hour: The limit for hour\(500\) cannot be lower than the limit for minute\(1000\)/,
  ],
  [
    "a route naming a service that does not exist",
    (c) => c.routes = [{ name: "stray", paths: ["/stray"], service: "herald-nothing" }],
    /routes\[0\]\(stray\)\.service: references service 'herald-nothing', which is not declared/,
  ],
  [
    "a credential for a consumer that does not exist",
    (c) => c.keyauth_credentials = [{ key: "k", consumer: "nobody" }],
    /keyauth_credentials\[0\]\.consumer: references consumer 'nobody'/,
  ],
  [
    "the same API key twice",
    (c) => c.consumers[1].keyauth_credentials[0].key = ENV.SUPABASE_ANON_KEY,
    /keyauth_credentials\.key must be unique/,
  ],
  [
    "an RS256 credential without a public key",
    (c) => c.consumers[3].jwt_secrets[0].algorithm = "RS256",
    /jwt_secrets\[0\]\.rsa_public_key: required when algorithm is RS256/,
  ],
  [
    "an empty string (Kong's strings are non-empty unless said otherwise)",
    (c) => service(c, "herald-notify").path = "",
    /services\[0\]\(herald-notify\)\.path: length must be at least 1/,
  ],
  [
    "a route without anything to match",
    (c) => delete notifyRoute(c).paths,
    /routes\[0\]\(herald-notify\): must set one of 'methods', 'hosts', 'headers', 'paths'/,
  ],
  [
    "acl with both allow and deny",
    (c) => plugin(notifyRoute(c), "acl").config.deny = ["x"],
    /\(acl\): only one of these fields can be set: 'config\.allow', 'config\.deny'/,
  ],
  [
    "an ip-restriction range that is not one",
    (c) => plugin(service(c, "herald-dispatch"), "ip-restriction").config.allow = ["10.0.0.0/33"],
    /\(ip-restriction\)\.config\.allow\[0\]: invalid ip or cidr range/,
  ],
  [
    "cors scoped to a consumer",
    (c) => c.plugins.push({ name: "cors", consumer: "anon" }),
    /plugins\[1\]\(cors\)\.consumer: plugin 'cors' cannot be scoped to a consumer/,
  ],
  [
    "a _format_version Kong 3.9 does not know",
    (c) => c._format_version = "4.0",
    /^_format_version: expected one of: 1\.1, 2\.1, 3\.0/,
  ],
];

for (const [what, breakIt, expected] of BROKEN) {
  Deno.test(`kong.yml: Kong 3.9 refuses ${what}`, () => {
    const config = rendered();
    breakIt(config);
    const errors = validateKongConfig(config);
    assert.ok(
      errors.some((e) => expected.test(e)),
      `expected ${expected}, got:\n${errors.join("\n")}`,
    );
  });
}

const HOUSE: [string, (config: Config) => void, RegExp][] = [
  [
    "a jwt that does not verify exp",
    (c) => plugin(notifyRoute(c), "jwt").config.claims_to_verify = ["nbf"],
    /\(jwt\)\.config\.claims_to_verify: every jwt must verify exp/,
  ],
  [
    "a jwt reading tokens from the query string (Kong's default)",
    (c) => delete plugin(notifyRoute(c), "jwt").config.uri_param_names,
    /\(jwt\)\.config\.uri_param_names: tokens in query strings leak/,
  ],
  [
    "a jwt on hooks",
    (c) =>
      service(c, "herald-hooks").plugins.push({
        name: "jwt",
        config: { claims_to_verify: ["exp"], uri_param_names: [] },
      }),
    /services\[1\]\(herald-hooks\)\.plugins\[\d\]\(jwt\): jwt must never see hooks/,
  ],
  [
    "a global jwt",
    (c) =>
      c.plugins.push({ name: "jwt", config: { claims_to_verify: ["exp"], uri_param_names: [] } }),
    /plugins\[1\]\(jwt\): jwt may not be global/,
  ],
  [
    "key-auth reading keys from the query string (Kong's default)",
    (c) => delete plugin(notifyRoute(c), "key-auth").config.key_in_query,
    /\(key-auth\)\.config\.key_in_query: keys in query strings leak/,
  ],
  [
    "a correlation-id plugin (it keeps any client x-request-id)",
    (c) =>
      c.plugins.push({
        name: "correlation-id",
        config: { header_name: "x-request-id", generator: "uuid", echo_downstream: true },
      }),
    /plugins\[1\]\(correlation-id\): no correlation-id: it keeps and echoes any client value/,
  ],
  [
    "a size limit other than the functions' 1 MiB",
    (c) =>
      plugin(service(c, "herald-hooks"), "request-size-limiting").config.allowed_payload_size = 2,
    /must equal the functions' limit, 1048576 bytes \(is 2097152\)/,
  ],
  [
    "a function without a route",
    (c) => c.services = c.services.filter((s: Config) => s.name !== "herald-health"),
    /function 'health' has no route at \/functions\/v1\/health/,
  ],
  [
    "dispatch without ip-restriction",
    (c) =>
      service(c, "herald-dispatch").plugins = service(c, "herald-dispatch").plugins.filter((
        p: Config,
      ) => p.name !== "ip-restriction"),
    /services\[2\]\(herald-dispatch\): dispatch must be ip-restricted/,
  ],
  [
    "metrics without ip-restriction",
    (c) =>
      service(c, "herald-metrics").plugins = service(c, "herald-metrics").plugins.filter((
        p: Config,
      ) => p.name !== "ip-restriction"),
    /services\[3\]\(herald-metrics\): metrics must be ip-restricted/,
  ],
  [
    "jwt on metrics (Prometheus has no user token)",
    (c) =>
      service(c, "herald-metrics").plugins.push(structuredClone(plugin(notifyRoute(c), "jwt"))),
    /jwt must never see metrics/,
  ],
  [
    "rate-limiting that hides nothing of Kong's headers",
    (c) => plugin(notifyRoute(c), "rate-limiting").config.hide_client_headers = false,
    /hide_client_headers: Herald's own RateLimit-\* headers must reach clients/,
  ],
  [
    "notify's per-address limit applied to every consumer, secret keys too",
    (c) => delete plugin(notifyRoute(c), "rate-limiting").consumer,
    /routes\[0\]\(herald-notify\)\.plugins\[\d\]\(rate-limiting\): on notify Kong limits only consumer anon/,
  ],
  [
    "a limit on the HMAC backend route (its callers hold the secret key)",
    (c) =>
      service(c, "herald-notify").routes[1].plugins.push(
        { ...structuredClone(plugin(notifyRoute(c), "rate-limiting")), consumer: undefined },
      ),
    /routes\[1\]\(herald-notify-backend\)\.plugins\[\d\]\(rate-limiting\): on notify Kong limits only consumer anon/,
  ],
  [
    "a rate limit on hooks",
    (c) =>
      service(c, "herald-hooks").plugins.push(
        structuredClone(plugin(notifyRoute(c), "rate-limiting")),
      ),
    /services\[1\]\(herald-hooks\)\.plugins\[\d\]\(rate-limiting\): no rate limit on hooks/,
  ],
  [
    "a passive health check counting Herald's own 503",
    (c) => c.upstreams[0].healthchecks.passive.unhealthy.http_statuses = [502, 503, 504],
    /passive\.unhealthy\.http_statuses: Herald answers 503 itself/,
  ],
  [
    "a passive health check on Kong's default statuses (429, 500, 503)",
    (c) => delete c.upstreams[0].healthchecks.passive.unhealthy.http_statuses,
    /Herald answers 429, 500, 503 itself/,
  ],
  [
    "no global prometheus",
    (c) => c.plugins = c.plugins.filter((p: Config) => p.name !== "prometheus"),
    /plugins: prometheus must be global/,
  ],
];

for (const [what, breakIt, expected] of HOUSE) {
  Deno.test(`kong.yml: Herald's rules refuse ${what}`, () => {
    const config = rendered();
    breakIt(config);
    const errors = houseRules(config, parse(TEMPLATE), FUNCTIONS);
    assert.ok(
      errors.some((e) => expected.test(e)),
      `expected ${expected}, got:\n${errors.join("\n")}`,
    );
  });
}

Deno.test("kong.yml: a literal secret in the template is refused", () => {
  const template = parse(TEMPLATE);
  template.consumers[0].keyauth_credentials[0].key = "eyJhbGciOiJIUzI1NiJ9.literal";
  const errors = houseRules(rendered(), template, FUNCTIONS);
  assert.ok(
    errors.some((e) => /consumers\[0\]\.keyauth_credentials\[0\]\.key: a literal secret/.test(e)),
    errors.join("\n"),
  );
});

Deno.test("kong:render: every $NAME is substituted; unset ones are refused by name", () => {
  const { text } = renderKongConfig(TEMPLATE, ENV);
  assert.doesNotMatch(text, /\$[A-Z_]/);
  assert.match(text, /sb_secret_test/);
  const { HERALD_BACKEND_HMAC_SECRET: _, SUPABASE_JWT_SECRET: __, ...partial } = ENV;
  assert.throws(
    () => renderKongConfig(TEMPLATE, partial),
    /set HERALD_BACKEND_HMAC_SECRET, SUPABASE_JWT_SECRET/,
  );
  assert.ok(templateNames(TEMPLATE).includes("HERALD_CANARY_WEIGHT"));
});

Deno.test("kong:render: the canary weight is a percent split between the two targets", () => {
  for (const [weight, stable] of [[0, 100], [10, 90], [50, 50], [100, 0]]) {
    const config = renderKongConfig(TEMPLATE, ENV, { canaryWeight: weight }).config as Config;
    const [stableTarget, canary] = config.upstreams[0].targets;
    assert.deepEqual([stableTarget.weight, canary.weight], [stable, weight]);
    assert.deepEqual(validateKongConfig(config), []);
  }
  assert.equal(
    (renderKongConfig(TEMPLATE, { ...ENV, HERALD_CANARY_WEIGHT: "25" }).config as Config)
      .upstreams[0].targets[1].weight,
    25,
  );
  for (const weight of [-1, 101, 12.5]) {
    assert.throws(() => renderKongConfig(TEMPLATE, ENV, { canaryWeight: weight }), /0…100/);
  }
});

Deno.test("kong.yml: what Kong 3.9 accepts passes: underscores in a target, snis on https, deprecated redis_* fields, PCRE/Rust regex syntax", () => {
  const config = rendered();
  config.upstreams[0].targets[0].target = "supabase_edge_runtime_myproject:9000";
  notifyRoute(config).snis = ["api.example.com"];
  // What PCRE and Rust's regex take and JavaScript's does not: inline flags, (?P<name>…).
  notifyRoute(config).paths = [
    "/functions/v1/notify",
    "~/functions/v1/notify/(?i:items)/(?P<id>[a-z]+)$",
  ];
  plugin(notifyRoute(config), "cors").config.origins = ["(?i)https://app\\.example\\.com"];
  const limit = plugin(service(config, "herald-health"), "rate-limiting").config;
  const { host, port, password } = limit.redis;
  delete limit.redis;
  Object.assign(limit, { redis_host: host, redis_port: port, redis_password: password });
  assert.deepEqual(validateKongConfig(config), []);
  assert.deepEqual(limit.redis.host, host, "the shorthand lands where Kong puts it");
});

Deno.test("kong:render: a public key the Auth algorithm cannot use is refused when rendering", () => {
  const render = (key: string, algorithm?: string) => () =>
    renderKongConfig(TEMPLATE, {
      ...ENV,
      SUPABASE_AUTH_JWT_PUBLIC_KEY: key,
      ...(algorithm ? { SUPABASE_AUTH_JWT_ALGORITHM: algorithm } : {}),
    });
  assert.throws(render("not a key"), /SUPABASE_AUTH_JWT_PUBLIC_KEY is not a ES256 public key/);
  assert.throws(render(PEM.replace("MFkw", "MFkx")), /is not a ES256 public key/);
  assert.throws(render(PEM, "ES384"), /is not a ES384 public key \(its curve is prime256v1\)/);
  assert.throws(render(PEM, "RS256"), /is not a RS256 public key \(a ec key where rsa is needed\)/);
  assert.throws(render(PEM, "HS256"), /SUPABASE_AUTH_JWT_ALGORITHM 'HS256' is not/);
});

Deno.test("kong:render: an asymmetric Auth key replaces the HS256 secret for user tokens", () => {
  const config = renderKongConfig(TEMPLATE, { ...ENV, SUPABASE_AUTH_JWT_PUBLIC_KEY: PEM })
    .config as Config;
  const credential =
    config.consumers.find((c: Config) => c.username === "authenticated").jwt_secrets[0];
  assert.deepEqual(credential, {
    key: ENV.SUPABASE_AUTH_ISSUER,
    algorithm: "ES256",
    rsa_public_key: PEM,
  });
  assert.deepEqual(validateKongConfig(config), []);
});

Deno.test("kong:render: --hosted sends each function to the hosted project over HTTPS", () => {
  const ref = "abcdefghijklmnopqrst";
  const { HERALD_FUNCTIONS_STABLE: _, HERALD_FUNCTIONS_CANARY: __, ...env } = ENV;
  const config = renderKongConfig(TEMPLATE, env, { hosted: ref }).config as Config;
  assert.deepEqual(config.upstreams[0].targets, [{
    target: `${ref}.supabase.co:443`,
    weight: 100,
  }]);
  const notify = service(config, "herald-notify");
  assert.deepEqual([notify.protocol, notify.port, notify.path], [
    "https",
    443,
    "/functions/v1/notify",
  ]);
  assert.equal(config.upstreams[0].host_header, `${ref}.supabase.co`);
  assert.equal(config.upstreams[0].healthchecks.active.http_path, "/functions/v1/health");
  assert.deepEqual(validateKongConfig(config), []);
  assert.throws(
    () => renderKongConfig(TEMPLATE, ENV, { hosted: "Not-A-Ref" }),
    /not a Supabase project ref/,
  );
});

Deno.test("kong:render: refuses to write into the repository", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/kong/render.ts", "--out", "kong/rendered.yml"],
    env: ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /refusing to write secrets into the repository/,
  );
  assert.equal(await Deno.stat("kong/rendered.yml").then(() => true, () => false), false);
});

Deno.test("kong:validate: a rendered file passes; a broken one fails, naming each problem", async () => {
  const dir = await Deno.makeTempDir({ prefix: "herald-kong-validate-" });
  const validate = (file: string) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/kong/validate.ts", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
  try {
    const good = `${dir}/kong.yml`;
    await Deno.writeTextFile(good, renderKongConfig(TEMPLATE, ENV).text);
    const passed = await validate(good);
    assert.equal(passed.code, 0, new TextDecoder().decode(passed.stderr));
    assert.match(new TextDecoder().decode(passed.stderr), /valid for Kong 3\.9/);
    const broken = rendered();
    plugin(notifyRoute(broken), "jwt").config.claims_to_verify = ["iat"];
    broken.upstreams[0].targets[1].weight = 70000;
    await Deno.writeTextFile(`${dir}/broken.yml`, JSON.stringify(broken));
    const failed = await validate(`${dir}/broken.yml`);
    assert.equal(failed.code, 1);
    const stderr = new TextDecoder().decode(failed.stderr);
    assert.match(stderr, /claims_to_verify\[0\]: expected one of: exp, nbf/);
    assert.match(stderr, /targets\[1\]\.weight: value should be between 0 and 65535/);
    assert.match(stderr, /every jwt must verify exp \(Herald\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("README: the rate-limit table states kong.yml's limits and message", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const table = readme.slice(readme.indexOf("- **Rate limits**"), readme.indexOf("- **HTTP**"));
  const config = rendered();
  const anon = plugin(notifyRoute(config), "rate-limiting");
  const health = plugin(service(config, "herald-health"), "rate-limiting");
  assert.equal(anon.consumer, "anon");
  for (const limit of [anon.config, health.config]) {
    assert.deepEqual(
      ["second", "hour", "day", "month", "year"].filter((p) => limit[p] !== undefined),
      [],
      "minutes only: a 429 lasts until the minute turns, as the README says",
    );
    assert.ok(table.includes(`${limit.minute.toLocaleString("en")} a minute`), `${limit.minute}`);
    assert.ok(table.includes(`"message": "${limit.error_message}"`), limit.error_message);
  }
  assert.ok(
    !service(config, "herald-notify").routes[1].plugins.some((p: Config) =>
      p.name === "rate-limiting"
    ),
    "the HMAC route: the function's per-key limit only",
  );
});
