/**
 * Concepts written down once: the channel list, SQLSTATE meanings, the
 * breaker key prefix, the inline-send defaults, where configuration is read,
 * how secrets and keys are compared, how long anything is waited for. Each rule reads the function code for a second
 * copy and is shown finding one planted in a sample; the channel list is
 * also held equal between TypeScript and the live schema, where no function
 * body or CHECK may spell it out a second time.
 */
import assert from "node:assert/strict";
import { CHANNEL_NAMES } from "../supabase/functions/_shared/channels.ts";
import { withAdminSql } from "./support/stack.ts";

const FUNCTIONS = new URL("../supabase/functions/", import.meta.url).pathname;

interface Rule {
  what: string;
  /** The one file (or files, by path suffix) allowed to hold it. */
  home: (path: string) => boolean;
  found: RegExp;
}

const RULES: Rule[] = [
  {
    what: "a list of channels (the registry is _shared/channels.ts)",
    home: (path) => path === "_shared/channels.ts",
    found: /["']push["']\s*[,|]\s*["']email["']|["']email["']\s*[,|]\s*["']webhook["']/,
  },
  {
    what: "a SQLSTATE compared by hand (db/refusals.ts maps refusals, db/unavailable.ts outages)",
    home: (path) => path === "_shared/db/refusals.ts" || path === "_shared/db/unavailable.ts",
    found: /["'](?:\d\d[0-9A-Z]{3}|P0\d{3})["']/,
  },
  {
    what: "the breaker key prefix (BREAKER_KEY_PREFIX in resilience/breaker.ts)",
    home: (path) => path === "_shared/resilience/breaker.ts",
    found: /herald:breaker/,
  },
  {
    what: "an inline-send default (INLINE_SEND_DEFAULTS in _shared/config.ts)",
    home: (path) => path === "_shared/config.ts",
    found: /\b(maxDeliveries|budgetMs):\s*[\d_]+/,
  },
  {
    what: "configuration read outside an entrypoint (index.ts reads Deno.env once)",
    home: (path) => /^[a-z-]+\/index\.ts$/.test(path),
    found: /\bDeno\.env\b/,
  },
  {
    what: "a secret compared with === (auth/constant_time.ts compares them)",
    home: (path) => path === "_shared/auth/constant_time.ts",
    found:
      /\b\w*(signature|digest|hmac|secret|apikey|api_key|presented)\w*\s*[!=]==|[!=]==\s*\w*(signature|digest|hmac|secret|apikey|api_key|presented)\w*\b(?!\.length)/i,
  },
  {
    what: "a hand-made time limit (withinMs in resilience/time_limit.ts, or AbortSignal.timeout)",
    home: (path) => path === "_shared/resilience/time_limit.ts",
    found: /Promise\.race\(/,
  },
  {
    what: "a key check by hand (requireKey / holdsKey in auth/require_key.ts)",
    home: (path) => path === "_shared/auth/require_key.ts" || path === "_shared/auth/caller.ts",
    found: /presentedCredentials\(/,
  },
];

/** Code lines only: doc comments and `//` comments may name the rules' subjects. */
function codeLines(text: string): [number, string][] {
  return text.split("\n").map((line, i) => [i + 1, line] as [number, string])
    .filter(([, line]) => !/^\s*(\*|\/\/|\/\*)/.test(line));
}

function secondPlaces(files: Map<string, string>): string[] {
  const findings: string[] = [];
  for (const [path, text] of files) {
    for (const rule of RULES) {
      if (rule.home(path)) continue;
      for (const [n, line] of codeLines(text)) {
        if (rule.found.test(line)) findings.push(`${path}:${n}: ${rule.what}: ${line.trim()}`);
      }
    }
  }
  return findings;
}

async function functionSources(dir = FUNCTIONS, prefix = ""): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      for (const [p, t] of await functionSources(`${dir}${entry.name}/`, `${path}/`)) {
        files.set(p, t);
      }
    } else if (entry.name.endsWith(".ts")) {
      files.set(path, await Deno.readTextFile(`${dir}${entry.name}`));
    }
  }
  return files;
}

Deno.test("one place: the function code holds no second copy of a registry, a default or a comparison rule", async () => {
  const files = await functionSources();
  assert.ok(files.size > 50, "read the function tree");
  assert.deepEqual(secondPlaces(files), []);
});

Deno.test("one place: each rule finds a second copy planted in a sample", () => {
  const planted = new Map([
    ["notify/routes/sms.ts", `const Channel = z.enum(["push", "email", "webhook", "sms"]);`],
    [
      "notify/routes/a.ts",
      `if ((error as { code?: string }).code === "23505") throw new Problem(409);`,
    ],
    ["notify/routes/b.ts", `if (code === "P0001") return;`],
    ["metrics/collect.ts", "const keys = await redis.keys(`herald:breaker:*`);"],
    ["notify/app.ts", "const inline = deps.inline ?? { maxDeliveries: 10, budgetMs: 1_500 };"],
    ["_shared/http/app.ts", `const instance = Deno.env.get("HERALD_INSTANCE");`],
    ["hooks/app.ts", "if (expectedSignature === header) return true;"],
    ["dispatch/app.ts", "return presented !== key;"],
    ["health/app.ts", "const value = await Promise.race([work(), timeout]);"],
    ["metrics/app.ts", "const presented = presentedCredentials(c.req.raw.headers);"],
  ]);
  const findings = secondPlaces(planted);
  assert.equal(findings.length, planted.size, findings.join("\n"));
  for (const path of planted.keys()) {
    assert.ok(findings.some((f) => f.startsWith(`${path}:`)), path);
  }
  // What each rule leaves alone: its home, comments, and lookalikes.
  const allowed = new Map([
    ["_shared/channels.ts", `push: { breakerKind: "fcm" }, email: {}, webhook: {}`],
    ["_shared/db/refusals.ts", `"23503": { status: 422 },`],
    ["notify/index.ts", "const config = loadConfig(Deno.env.toObject());"],
    ["_shared/config.ts", " * const config = loadConfig(Deno.env.toObject());"],
    ["notify/schemas.ts", `if (!n.channels.includes("push")) return;`],
    ["_shared/providers/webhook.ts", "if (delivery.secrets.length === 0) throw error;"],
  ]);
  assert.deepEqual(secondPlaces(allowed), []);
});

Deno.test("one place: herald.channel_names() is the TypeScript registry, and no SQL function or CHECK lists channels itself", async () => {
  await withAdminSql(async (sql) => {
    const [{ names }] = await sql`select herald.channel_names() as names`;
    assert.deepEqual(names, CHANNEL_NAMES);
    // Quoted as SQL text ('push', 'email') or as JSON ("push", "email").
    const listed = new RegExp(
      CHANNEL_NAMES.slice(0, 2).map((name) => `['"]${name}['"]`).join("\\s*,\\s*"),
    );
    for (const planted of [`'["push", "email", "webhook"]'::jsonb`, "array['push', 'email']"]) {
      assert.match(planted, listed);
    }
    const definitions = await sql<{ name: string; definition: string }[]>`
      select p.oid::regprocedure::text as name, p.prosrc as definition
      from pg_proc p where p.pronamespace = 'herald'::regnamespace
        and p.proname <> 'channel_names'
      union all
      select c.conrelid::regclass || '.' || c.conname, pg_get_constraintdef(c.oid)
      from pg_constraint c join pg_class t on t.oid = c.conrelid
      where t.relnamespace = 'herald'::regnamespace`;
    assert.ok(definitions.length > 30, "read the schema");
    assert.deepEqual(
      definitions.filter((d) => listed.test(d.definition)).map((d) => d.name),
      [],
    );
  });
});

Deno.test("one place: the README's 'Adding a channel' names files that exist, the registry first", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.match(/### Adding a channel\n([\s\S]*?)\n## /)?.[1] ?? "";
  const paths = [...section.matchAll(/`((?:supabase|tests)\/[\w/.-]+\.(?:ts|sql))`/g)]
    .map((m) => m[1]).filter((path) => !path.endsWith("/sms.ts"));
  assert.equal(paths[0], "tests/one_place_test.ts");
  assert.equal(paths[1], "supabase/functions/_shared/channels.ts");
  for (const path of paths) {
    assert.ok(await Deno.stat(new URL(`../${path}`, import.meta.url)).catch(() => false), path);
  }
  assert.match(section, /herald\.channel_names\(\)/);
});

/**
 * Top-level functions longer than `limit` lines whose doc comment does not
 * say why they are one piece, and shorter ones still saying so.
 */
function longFunctions(files: Map<string, string>, limit = 80): string[] {
  const found: string[] = [];
  for (const [path, text] of files) {
    const lines = text.split("\n");
    lines.forEach((line, start) => {
      if (!/^(export )?(async )?function /.test(line)) return;
      const end = lines.findIndex((l, i) => i > start && l === "}");
      // Its own doc comment: the one ending on the line above it.
      let doc = start - 1;
      while (
        doc >= 0 && lines[start - 1]?.trimEnd().endsWith("*/") && !lines[doc].startsWith("/**")
      ) {
        doc--;
      }
      const comment = doc >= 0 && lines[start - 1]?.trimEnd().endsWith("*/")
        ? lines.slice(doc, start).join("\n")
        : "";
      if (end - start > limit && !comment.includes("One piece:")) {
        found.push(`${path}:${start + 1}: ${end - start} lines: ${line.trim()}`);
      }
      if (end - start <= limit && comment.includes("One piece:")) {
        found.push(`${path}:${start + 1}: says it is one piece at ${end - start} lines`);
      }
    });
  }
  return found;
}

Deno.test("small units: no function in supabase/functions is over 80 lines without saying why it is one piece", async () => {
  assert.deepEqual(longFunctions(await functionSources()), []);
  const long = [
    "/** Does a lot. */",
    "export function big() {",
    ..."  x();\n".repeat(81).split("\n"),
    "}",
  ];
  assert.equal(longFunctions(new Map([["a.ts", long.join("\n")]])).length, 1);
  long[0] = "/**\n * Does a lot.\n *\n * One piece: a reason.\n */";
  assert.equal(longFunctions(new Map([["a.ts", long.join("\n")]])).length, 0);
});

Deno.test("tooling budget: scripts/ holds fewer lines of TypeScript than supabase/functions/", async () => {
  const lines = async (dir: string): Promise<number> => {
    let total = 0;
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) total += await lines(path);
      else if (entry.name.endsWith(".ts")) {
        total += (await Deno.readTextFile(path)).split("\n").length - 1;
      }
    }
    return total;
  };
  const root = new URL("../", import.meta.url).pathname;
  const [tooling, product] = [
    await lines(`${root}scripts`),
    await lines(`${root}supabase/functions`),
  ];
  assert.ok(tooling < product, `scripts/ ${tooling} lines, supabase/functions/ ${product}`);
});
