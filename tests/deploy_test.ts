/**
 * scripts/deployment-manager.sh end to end: run as a process from a clone of
 * this repository, with the `supabase` CLI stand-in first on PATH
 * (tests/fakes/supabase_cli.ts: records every call, runs `db query` on the
 * test stack's Postgres), a Kong admin API stand-in, and the running test
 * stack as the deployed service — its stable pool behind Kong and its canary
 * pool (HERALD_INSTANCE=canary) answering readiness, metrics and the smoke test.
 */
import assert from "node:assert/strict";
import { localKongEnv } from "../scripts/stack/kong/main.ts";
import { startKongAdmin } from "./fakes/kong_admin.ts";
import { adminSql, stack } from "./support/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const PRODUCTION = "prodprodprodprodprod";
const STAGING = "stagstagstagstagstag";
const FUNCTIONS = ["dispatch", "health", "hooks", "metrics", "notify"];
const sql = adminSql();

const work = await Deno.makeTempDir({ prefix: "herald-deploy-test-" });
const clone = `${work}/repo`;
await _git(ROOT, "clone", "--quiet", "--shared", ROOT, clone);
await _git(clone, "config", "user.email", "deploy-test@example.test");
await _git(clone, "config", "user.name", "deploy test");
const HEAD = await _git(clone, "rev-parse", "HEAD");
// The clone's origin is a bare repository of the test's own: HERALD_PUSH_TAGS pushes there.
const origin = `${work}/origin.git`;
await _git(work, "init", "--quiet", "--bare", origin);
await _git(clone, "remote", "set-url", "origin", origin);

async function _git(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args, cwd, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** A fresh fake project: state directory, no releases, no canary share. */
async function freshState(): Promise<string> {
  const state = await Deno.makeTempDir({ dir: work, prefix: "state-" });
  await sql`delete from herald.releases`;
  await sql`update herald.dispatch_canary set percent = 0`;
  return state;
}

const smokeToken = () => `smoke-${crypto.randomUUID()}`;

function env(state: string, extra: Record<string, string | undefined> = {}) {
  const base: Record<string, string | undefined> = {
    PATH: `${ROOT}/tests/fakes/bin:${Deno.execPath().replace(/\/[^/]+$/, "")}:${
      Deno.env.get("PATH")
    }`,
    HOME: Deno.env.get("HOME"),
    DENO_DIR: Deno.env.get("DENO_DIR"),
    FAKE_SUPABASE_STATE: state,
    FAKE_SUPABASE_DB_URL: stack.dbUrl,
    FAKE_SUPABASE_DENO: Deno.execPath(),
    SUPABASE_ACCESS_TOKEN: "sbp_fake0000000000000000000000000000000000",
    SUPABASE_PROJECT_REF: PRODUCTION,
    HERALD_STAGING_PROJECT_REF: STAGING,
    SUPABASE_DB_PASSWORD: "fake-database-password",
    SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
    HERALD_SMOKE_DEVICE_TOKEN: smokeToken(),
    HERALD_FUNCTIONS_URL: `${stack.apiUrl}/functions/v1`,
    HERALD_CANARY_FUNCTIONS_URL: `http://127.0.0.1:${stack.ports.edgeCanary}/functions/v1`,
    HERALD_BACKUP_DIR: `${state}/backups`,
    // No traffic-shape threshold decides a test by timing: p95 is tested in gate_test.
    HERALD_GATE_P95_MS: "60000",
    HERALD_GATE_MIN_EVENTS: "3",
    ...extra,
  };
  return Object.fromEntries(
    Object.entries(base).filter(([, v]) => v !== undefined),
  ) as Record<string, string>;
}

/** Runs the manager; while it runs, `traffic` is called every 150 ms. */
async function manager(
  args: string[],
  environment: Record<string, string>,
  traffic?: () => Promise<unknown>,
): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(`${ROOT}/scripts/deployment-manager.sh`, {
    args,
    cwd: clone,
    env: { ...environment, HERALD_REPO: clone },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let running = true;
  const load = (async () => {
    while (running && traffic) {
      await traffic().catch(() => {});
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  const out = await child.output();
  running = false;
  await load;
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, out: text };
}

interface Call {
  argv: string[];
  workdir_sha: string | null;
  stamped: string | null;
}

async function calls(state: string): Promise<Call[]> {
  const text = await Deno.readTextFile(`${state}/calls.jsonl`).catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** The calls as `command subcommand` strings, global flags left out. */
const shape = (c: Call) =>
  c.argv.filter((a, i, all) => a !== "--workdir" && all[i - 1] !== "--workdir")
    .slice(0, 2).join(" ");

const deploys = (cs: Call[]) =>
  cs.filter((c) => shape(c) === "functions deploy").map((c) => ({
    slugs: c.argv.slice(c.argv.indexOf("deploy") + 1).filter((a) => !a.startsWith("-"))
      .filter((a, i, all) => all[i - 1] !== "--project-ref" && a !== PRODUCTION && a !== STAGING),
    ref: c.argv[c.argv.indexOf("--project-ref") + 1],
    stamped: c.stamped,
    sha: c.workdir_sha,
  }));

/** One push through the stable pool (Kong) or the canary pool, to `token`. */
function notify(canary: boolean, token: string) {
  const url = canary
    ? `http://127.0.0.1:${stack.ports.edgeCanary}/functions/v1/notify`
    : `${stack.apiUrl}/functions/v1/notify`;
  return fetch(url, {
    method: "POST",
    headers: {
      apikey: stack.serviceRoleKey,
      authorization: `Bearer ${stack.serviceRoleKey}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({
      targets: [{ channel: "push", token, platform: "android" }],
      title: "deploy test",
    }),
  }).then((r) => r.body?.cancel());
}

/** Tells the FCM stand-in to answer `code` for `token`. */
async function fcmFails(token: string, code: string) {
  const r = await fetch(`${stack.fakes.fcm}/_control/tokens`, {
    method: "POST",
    body: JSON.stringify({ token, fcm_error: code }),
  });
  assert.ok(r.ok, await r.text());
}

const releases = () =>
  sql`select id, git_sha, git_tag, state, canary_percent, functions, latest_migration
      from herald.releases order by id`;

Deno.test("deploy: --help says every command; no command or an unknown one is a usage error", async () => {
  const state = await freshState();
  const help = await manager(["--help"], env(state));
  assert.equal(help.code, 0);
  for (
    const command of [
      "deploy --env staging|production [--canary PERCENT]",
      "promote-canary",
      "rollback [--env production] [--to RELEASE]",
      "list-backups",
      "backup",
      "health-check --url URL",
      "status",
    ]
  ) assert.ok(help.out.includes(command), command);
  assert.equal((await manager([], env(state))).code, 2);
  const unknown = await manager(["deploy-everything"], env(state));
  assert.equal(unknown.code, 2);
  assert.match(unknown.out, /unknown command 'deploy-everything'/);
  const badCanary = await manager(["deploy", "--env", "production", "--canary", "0"], env(state));
  assert.equal(badCanary.code, 2);
  assert.match(badCanary.out, /--canary must be a whole percent 1…100/);
  const badEnv = await manager(["deploy", "--env", "prod"], env(state));
  assert.equal(badEnv.code, 2);
  assert.deepEqual(await calls(state), [], "nothing was touched");
});

for (
  const missing of [
    "SUPABASE_ACCESS_TOKEN",
    "SUPABASE_PROJECT_REF",
    "SUPABASE_DB_PASSWORD",
    "SUPABASE_SERVICE_ROLE_KEY",
  ]
) {
  Deno.test(`deploy: without ${missing} it refuses before touching anything`, async () => {
    const state = await freshState();
    const run = await manager(
      ["deploy", "--env", "production", "--canary", "10"],
      env(state, { [missing]: undefined }),
    );
    assert.equal(run.code, 2, run.out);
    assert.match(run.out, new RegExp(`needs ${missing}: set it`));
    assert.deepEqual(await calls(state), []);
  });
}

Deno.test("deploy: staging without HERALD_STAGING_PROJECT_REF refuses; the production ref does not stand in", async () => {
  const state = await freshState();
  const run = await manager(
    ["deploy", "--env", "staging"],
    env(state, { HERALD_STAGING_PROJECT_REF: undefined }),
  );
  assert.equal(run.code, 2);
  assert.match(run.out, /needs HERALD_STAGING_PROJECT_REF/);
  assert.deepEqual(await calls(state), []);
});

Deno.test("deploy: staging runs link, db push, every function deployed stamped stable, the smoke test, and records the release", async () => {
  const state = await freshState();
  const run = await manager(["deploy", "--env", "staging"], env(state));
  assert.equal(run.code, 0, run.out);
  const cs = await calls(state);
  const order = cs.map(shape).filter((s) => s !== "db query" && s !== "functions list");
  assert.deepEqual(order, ["link --project-ref", "db push", "functions deploy"]);
  assert.deepEqual(cs[0].argv, ["link", "--project-ref", STAGING]);
  assert.ok(cs[1].argv.includes("--linked") && cs[1].argv.includes("--yes"));
  assert.deepEqual(deploys(cs), [{ slugs: FUNCTIONS, ref: STAGING, stamped: "stable", sha: HEAD }]);
  assert.ok(cs.find((c) => shape(c) === "functions deploy")!.argv.includes("--use-api"));
  assert.match(run.out, /smoke test: .* → sent \(validate_only\)/);
  const [release] = await releases();
  assert.equal(release.state, "live");
  assert.equal(release.git_sha, HEAD);
  assert.equal(release.git_tag, `herald/staging/r${release.id}`);
  assert.equal(await _git(clone, "rev-parse", `${release.git_tag}^{commit}`), HEAD);
  assert.deepEqual(release.functions.map((f: { slug: string }) => f.slug), FUNCTIONS);
  assert.ok(
    release.functions.every((f: { version: number; ezbr_sha256: string }) =>
      f.version === 1 && /^[0-9a-f]{64}$/.test(f.ezbr_sha256)
    ),
  );
  const migrations = [...Deno.readDirSync(`${ROOT}/supabase/migrations`)].map((e) => e.name).sort();
  assert.equal(release.latest_migration, migrations.at(-1));
});

Deno.test("deploy: a failing staging smoke test exits non-zero, records nothing and never reaches production", async () => {
  const state = await freshState();
  const token = smokeToken();
  await fcmFails(token, "UNREGISTERED");
  const run = await manager(
    ["deploy", "--env", "staging"],
    env(state, { HERALD_SMOKE_DEVICE_TOKEN: token }),
  );
  assert.equal(run.code, 1, run.out);
  assert.match(
    run.out,
    /staging failed its smoke test: .*ended failed.*production is not touched/s,
  );
  assert.equal((await releases()).length, 0);
  assert.ok((await calls(state)).every((c) => !c.argv.includes(PRODUCTION)));
});

Deno.test("deploy: a failing step of the CLI stops the deploy there, with the step named", async () => {
  const state = await freshState();
  const run = await manager(
    ["deploy", "--env", "staging"],
    env(state, { FAKE_SUPABASE_FAIL: "db push" }),
  );
  assert.equal(run.code, 1);
  assert.match(run.out, /FAILED: supabase db push exited 1/);
  assert.deepEqual((await calls(state)).map(shape), ["link --project-ref", "db push"]);
});

Deno.test("deploy: production canary, gate passed, promoted: backup, push, canary slugs at 10 %, then stable redeployed and the canary removed", async () => {
  const state = await freshState();
  // A stable release to back up and supersede.
  const first = await manager(["deploy", "--env", "production"], env(state));
  assert.equal(first.code, 0, first.out);
  const good = `good-${crypto.randomUUID()}`;
  let seenShare = 0;
  const run = await manager(
    ["deploy", "--env", "production", "--canary", "10", "--window", "4"],
    env(state),
    async () => {
      const [{ percent }] = await sql`select percent from herald.dispatch_canary`;
      seenShare = Math.max(seenShare, percent);
      await Promise.all([notify(true, good), notify(false, good)]);
    },
  );
  assert.equal(run.code, 0, run.out);
  assert.equal(seenShare, 10, "the canary had 10 % of dispatch rounds during the window");
  const cs = (await calls(state)).slice(
    (await calls(state)).findIndex((c, i, all) =>
      i > 0 && shape(c) === "link --project-ref" &&
      all.slice(0, i).some((p) => shape(p) === "functions deploy")
    ),
  );
  const order = cs.map(shape).filter((s) => s !== "db query");
  assert.deepEqual(order, [
    "link --project-ref",
    "db dump",
    "db dump",
    "functions list",
    ...FUNCTIONS.map(() => "functions download"),
    "db push",
    "functions deploy",
    "functions list",
    "functions deploy",
    "functions list",
    ...FUNCTIONS.map(() => "functions delete"),
    "functions list",
  ]);
  assert.deepEqual(deploys(cs), [
    { slugs: FUNCTIONS.map((f) => `${f}-canary`), ref: PRODUCTION, stamped: "canary", sha: HEAD },
    { slugs: FUNCTIONS, ref: PRODUCTION, stamped: "stable", sha: HEAD },
  ]);
  assert.deepEqual(
    cs.filter((c) => shape(c) === "functions delete").map((c) => c.argv[2]),
    FUNCTIONS.map((f) => `${f}-canary`),
  );
  const [{ percent }] = await sql`select percent from herald.dispatch_canary`;
  assert.equal(percent, 0);
  const [old, promoted] = await releases();
  assert.equal(old.state, "superseded");
  assert.equal(promoted.state, "live");
  assert.deepEqual(
    promoted.functions.map((f: { slug: string; version: number }) => [f.slug, f.version]),
    FUNCTIONS.map((f) => [f, 2]),
    "the stable slugs at their second version, no canary slug",
  );
  assert.match(run.out, /ok {3}error ratio: canary/);

  // list-backups shows what backup saved before the canary went out.
  const listed = await manager(["list-backups"], env(state));
  assert.equal(listed.code, 0);
  // Two backups: before the first stable deploy (nothing live yet) and before the canary.
  const dirs = [...Deno.readDirSync(`${state}/backups`)].map((e) => e.name).sort();
  assert.equal(dirs.length, 2);
  const dir = dirs[1];
  assert.match(dir, /^production-\d{8}T\d{6}Z(-\d+)?$/);
  assert.ok(listed.out.includes(dir));
  assert.ok(listed.out.includes(PRODUCTION));
  assert.ok(listed.out.includes(`release r${old.id} ${HEAD.slice(0, 12)}`));
  assert.ok(listed.out.includes(`functions ${FUNCTIONS.join(",")}`));
  for (const file of ["schema.sql", "data.sql", "backup.json"]) {
    assert.ok(Deno.statSync(`${state}/backups/${dir}/${file}`).isFile, file);
  }
  const saved = await Deno.readTextFile(
    `${state}/backups/${dir}/supabase/functions/notify/_shared/build.ts`,
  );
  assert.match(saved, /deployment: "stable"/, "the live stable bundle was downloaded");
  assert.match(await Deno.readTextFile(`${state}/backups/${dir}/schema.sql`), /herald\.releases/);
});

Deno.test("deploy: a canary whose error ratio is over the margin is rolled back by itself and the run exits 1", async () => {
  const state = await freshState();
  const first = await manager(["deploy", "--env", "production"], env(state));
  assert.equal(first.code, 0, first.out);
  const bad = `bad-${crypto.randomUUID()}`;
  await fcmFails(bad, "THIRD_PARTY_AUTH_ERROR");
  const good = `good-${crypto.randomUUID()}`;
  const before = (await calls(state)).length;
  const run = await manager(
    ["deploy", "--env", "production", "--canary", "10", "--window", "20"],
    env(state, { HERALD_GATE_MIN_EVENTS: "10" }),
    () => Promise.all([notify(true, bad), notify(false, good), notify(false, good)]),
  );
  assert.equal(run.code, 1, run.out);
  assert.match(run.out, /FAIL error ratio: canary/);
  assert.match(run.out, /rolled back by the health gate/);
  const cs = (await calls(state)).slice(before);
  assert.deepEqual(deploys(cs).map((d) => d.stamped), ["canary"], "stable was never redeployed");
  assert.deepEqual(
    cs.filter((c) => shape(c) === "functions delete").map((c) => c.argv[2]),
    FUNCTIONS.map((f) => `${f}-canary`),
  );
  const [{ percent }] = await sql`select percent from herald.dispatch_canary`;
  assert.equal(percent, 0);
  const [live, canary] = await releases();
  assert.equal(live.state, "live", "the stable release stays live");
  assert.equal(canary.state, "rolled_back");
});

Deno.test("deploy: a canary that fails its smoke test is withdrawn before it gets traffic", async () => {
  const state = await freshState();
  const token = smokeToken();
  await fcmFails(token, "UNREGISTERED");
  const run = await manager(
    ["deploy", "--env", "production", "--canary", "10"],
    env(state, { HERALD_SMOKE_DEVICE_TOKEN: token }),
  );
  assert.equal(run.code, 1, run.out);
  assert.match(run.out, /the canary failed its smoke test and was rolled back/);
  assert.equal((await releases()).length, 0);
  const [{ percent }] = await sql`select percent from herald.dispatch_canary`;
  assert.equal(percent, 0);
});

Deno.test("deploy: --hold leaves a gated canary in flight; promote-canary then redeploys the stable slugs and removes the canary ones", async () => {
  const state = await freshState();
  const good = `good-${crypto.randomUUID()}`;
  const held = await manager(
    ["deploy", "--env", "production", "--canary", "25", "--window", "3", "--hold"],
    env(state),
    () => notify(true, good),
  );
  assert.equal(held.code, 0, held.out);
  assert.equal((await releases())[0].state, "canary");
  const [{ percent }] = await sql`select percent from herald.dispatch_canary`;
  assert.equal(percent, 25);
  const again = await manager(["deploy", "--env", "production", "--canary", "10"], env(state));
  assert.equal(again.code, 1);
  assert.match(again.out, /is still a canary: promote-canary or rollback first/);

  const before = (await calls(state)).length;
  const promoted = await manager(["promote-canary"], env(state));
  assert.equal(promoted.code, 0, promoted.out);
  const cs = (await calls(state)).slice(before);
  assert.deepEqual(deploys(cs), [{
    slugs: FUNCTIONS,
    ref: PRODUCTION,
    stamped: "stable",
    sha: HEAD,
  }]);
  assert.deepEqual(
    cs.filter((c) => shape(c) === "functions delete").map((c) => c.argv[2]),
    FUNCTIONS.map((f) => `${f}-canary`),
  );
  assert.equal((await releases())[0].state, "live");
  assert.equal((await sql`select percent from herald.dispatch_canary`)[0].percent, 0);
  const none = await manager(["promote-canary"], env(state));
  assert.equal(none.code, 1);
  assert.match(none.out, /no canary is in flight/);
});

Deno.test("deploy: rollback with a canary in flight withdraws it; stable is not redeployed", async () => {
  const state = await freshState();
  const good = `good-${crypto.randomUUID()}`;
  const held = await manager(
    ["deploy", "--env", "production", "--canary", "10", "--window", "2", "--hold"],
    env(state),
    () => notify(true, good),
  );
  assert.equal(held.code, 0, held.out);
  const before = (await calls(state)).length;
  const run = await manager(["rollback"], env(state));
  assert.equal(run.code, 0, run.out);
  const cs = (await calls(state)).slice(before);
  assert.deepEqual(deploys(cs), []);
  assert.equal(cs.filter((c) => shape(c) === "functions delete").length, FUNCTIONS.length);
  assert.equal((await releases())[0].state, "rolled_back");
});

Deno.test("deploy: rollback --to a named release redeploys its tag; with no --to, the previous live one", async () => {
  const state = await freshState();
  const first = await manager(["deploy", "--env", "production"], env(state));
  assert.equal(first.code, 0, first.out);
  const [r1] = await releases();
  // A later release from another commit, live now (recorded as a deploy of it would).
  await _git(clone, "commit", "--quiet", "--allow-empty", "-m", "a later release");
  const later = await _git(clone, "rev-parse", "HEAD");
  await _git(clone, "tag", "herald/production/later", later);
  await sql`update herald.releases set state = 'superseded'`;
  await sql`insert into herald.releases (git_sha, git_tag, state, latest_migration)
            values (${later}, 'herald/production/later', 'live', ${r1.latest_migration})`;
  try {
    const before = (await calls(state)).length;
    const run = await manager(["rollback", "--to", r1.git_tag], env(state));
    assert.equal(run.code, 0, run.out);
    assert.deepEqual(deploys((await calls(state)).slice(before)), [
      { slugs: FUNCTIONS, ref: PRODUCTION, stamped: "stable", sha: HEAD },
    ]);
    const rows = await releases();
    assert.deepEqual(rows.map((r) => r.state), ["superseded", "rolled_back", "live"]);
    assert.equal(rows[2].git_sha, HEAD);
    assert.equal(rows[2].git_tag, r1.git_tag);

    // By id, and unknown names refused.
    const byId = await manager(["rollback", "--to", `r${r1.id}`], env(state));
    assert.equal(byId.code, 0, byId.out);
    const unknown = await manager(["rollback", "--to", "herald/production/nope"], env(state));
    assert.equal(unknown.code, 1);
    assert.match(unknown.out, /no release herald\/production\/nope/);
  } finally {
    await _git(clone, "reset", "--quiet", "--hard", HEAD);
  }
});

Deno.test("deploy: rollback refuses to cross a migration marked herald:breaking", async () => {
  const state = await freshState();
  const first = await manager(["deploy", "--env", "production"], env(state));
  assert.equal(first.code, 0, first.out);
  const [r1] = await releases();
  const contract = "29991231000000_drop_old_column.sql";
  await Deno.writeTextFile(
    `${clone}/supabase/migrations/${contract}`,
    "-- herald:breaking — drops a column the previous release reads.\nselect 1;\n",
  );
  await _git(clone, "add", ".");
  await _git(clone, "commit", "--quiet", "-m", "contract");
  try {
    const sha = await _git(clone, "rev-parse", "HEAD");
    await sql`update herald.releases set state = 'superseded'`;
    await sql`insert into herald.releases (git_sha, git_tag, state, latest_migration)
              values (${sha}, null, 'live', ${contract})`;
    const before = (await calls(state)).length;
    const run = await manager(["rollback", "--to", `r${r1.id}`], env(state));
    assert.equal(run.code, 1, run.out);
    assert.match(run.out, new RegExp(`predates ${contract}, marked herald:breaking`));
    assert.deepEqual(deploys((await calls(state)).slice(before)), []);
  } finally {
    await _git(clone, "reset", "--quiet", "--hard", HEAD);
  }
});

Deno.test("deploy: self-hosted behind Kong: the canary folder and weight 20, then promoted: 100, stable folder written, back to 0", async () => {
  const state = await freshState();
  const kong = startKongAdmin();
  const stableDir = `${state}/volumes/functions`;
  const canaryDir = `${state}/volumes-canary/functions`;
  const good = `good-${crypto.randomUUID()}`;
  try {
    const selfHosted = env(state, {
      ...localKongEnv(stack),
      SUPABASE_ACCESS_TOKEN: undefined,
      SUPABASE_PROJECT_REF: undefined,
      SUPABASE_DB_PASSWORD: undefined,
      KONG_ADMIN_URL: kong.url,
      SUPABASE_DB_URL: stack.dbUrl,
      HERALD_STABLE_FUNCTIONS_DIR: stableDir,
      HERALD_CANARY_FUNCTIONS_DIR: canaryDir,
    });
    const run = await manager(
      ["deploy", "--env", "production", "--canary", "20", "--window", "3"],
      selfHosted,
      () => notify(true, good),
    );
    assert.equal(run.code, 0, run.out);
    assert.deepEqual(kong.weights(), [
      { stable: 80, canary: 20 },
      { stable: 0, canary: 100 },
      { stable: 100, canary: 0 },
    ]);
    const cs = await calls(state);
    assert.ok(cs.every((c) => !c.argv.includes("--linked")), "self-hosted never uses --linked");
    assert.ok(cs.filter((c) => shape(c) === "db push").every((c) => c.argv.includes("--db-url")));
    for (const [dir, deployment] of [[canaryDir, "canary"], [stableDir, "stable"]]) {
      const build = await Deno.readTextFile(`${dir}/_shared/build.ts`);
      assert.match(build, new RegExp(`deployment: "${deployment}"`));
      assert.match(build, new RegExp(`gitSha: "${HEAD}"`));
      for (const f of FUNCTIONS) assert.ok(Deno.statSync(`${dir}/${f}/deno.json`).isFile);
    }
    const [release] = await releases();
    assert.equal(release.state, "live");
    assert.deepEqual(
      release.functions.map((f: { slug: string }) => f.slug),
      [...FUNCTIONS, ...FUNCTIONS.map((f) => `${f}-canary`)].sort(),
    );
    const status = await manager(["status"], selfHosted);
    assert.equal(status.code, 0, status.out);
    assert.match(status.out, /canary share: .* weight 100, .* weight 0/);
    assert.match(status.out, new RegExp(`r${release.id} +live +${HEAD.slice(0, 12)}`));
  } finally {
    await kong.close();
  }
});

Deno.test("deploy: self-hosted without the canary folder refuses before touching anything", async () => {
  const state = await freshState();
  const run = await manager(
    ["deploy", "--env", "production", "--canary", "20"],
    env(state, { KONG_ADMIN_URL: "http://127.0.0.1:1", SUPABASE_DB_URL: stack.dbUrl }),
  );
  assert.equal(run.code, 2);
  assert.match(run.out, /needs HERALD_STABLE_FUNCTIONS_DIR, HERALD_CANARY_FUNCTIONS_DIR/);
  assert.deepEqual(await calls(state), []);
});

Deno.test("deploy: health-check passes a healthy canary and fails one that is not ready", async () => {
  const state = await freshState();
  const good = `good-${crypto.randomUUID()}`;
  const ok = await manager(
    [
      "health-check",
      "--url",
      `${stack.apiUrl}/functions/v1`,
      "--window",
      "2",
      "--expect-sha",
      HEAD,
    ],
    env(state),
    () => notify(true, good),
  );
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /canary ready: canary/);
  assert.match(ok.out, /the canary is as healthy as stable/);
  const wrongSha = await manager(
    [
      "health-check",
      "--url",
      `${stack.apiUrl}/functions/v1`,
      "--window",
      "1",
      "--expect-sha",
      "0".repeat(40),
    ],
    env(state),
  );
  assert.equal(wrongSha.code, 1);
  assert.match(wrongSha.out, /the canary runs [0-9a-f]{40}, not 0{40}/);
  const dead = await manager(
    [
      "health-check",
      "--url",
      `${stack.apiUrl}/functions/v1`,
      "--canary-url",
      "http://127.0.0.1:1/functions/v1",
      "--window",
      "1",
    ],
    env(state),
  );
  assert.equal(dead.code, 1);
  assert.match(dead.out, /health\/ready did not answer/);
  assert.equal((await manager(["health-check"], env(state))).code, 2);
});

Deno.test("deploy: the service-role key never appears in what the manager prints", async () => {
  const state = await freshState();
  const run = await manager(
    ["deploy", "--env", "staging"],
    env(state, { FAKE_SUPABASE_FAIL: "functions deploy" }),
  );
  assert.equal(run.code, 1);
  assert.ok(!run.out.includes(stack.serviceRoleKey));
  assert.ok(!run.out.includes("fake-database-password"));
});

Deno.test("deploy: backup on its own saves dumps and every live function; list-backups and status show them", async () => {
  const state = await freshState();
  const first = await manager(["deploy", "--env", "production"], env(state));
  assert.equal(first.code, 0, first.out);
  const empty = await manager(["list-backups"], env(state, { HERALD_BACKUP_DIR: `${state}/none` }));
  assert.equal(empty.code, 0);
  assert.match(empty.out, /no backups under/);
  const before = (await calls(state)).length;
  const backup = await manager(["backup"], env(state));
  assert.equal(backup.code, 0, backup.out);
  const cs = (await calls(state)).slice(before);
  assert.deepEqual(
    cs.filter((c) => shape(c) === "db dump").map((c) => c.argv.includes("--data-only")),
    [false, true],
  );
  assert.deepEqual(
    cs.filter((c) => shape(c) === "functions download").map((c) =>
      c.argv[c.argv.indexOf("download") + 1]
    ),
    FUNCTIONS,
  );
  const dirs = [...Deno.readDirSync(`${state}/backups`)].map((e) => e.name).sort();
  const dir = dirs.at(-1)!;
  const manifest = JSON.parse(await Deno.readTextFile(`${state}/backups/${dir}/backup.json`));
  assert.equal(manifest.project, PRODUCTION);
  assert.deepEqual(manifest.functions.map((f: { slug: string }) => f.slug), FUNCTIONS);
  for (const f of FUNCTIONS) {
    assert.ok(Deno.statSync(`${state}/backups/${dir}/supabase/functions/${f}/index.ts`).isFile, f);
  }
  const listed = await manager(["list-backups"], env(state));
  assert.equal(listed.code, 0);
  assert.ok(
    listed.out.indexOf(dir) < listed.out.indexOf(dirs[0]) || dirs.length === 1,
    "newest first",
  );

  const status = await manager(["status"], env(state));
  assert.equal(status.code, 0, status.out);
  const [release] = await releases();
  assert.match(status.out, new RegExp(`r${release.id} +live +${HEAD.slice(0, 12)}`));
  assert.match(status.out, /notify +v1 +[0-9a-f]{64}/);
  assert.match(status.out, /canary share: 0 % of dispatch rounds/);
});

/** A free loopback port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return listener.addr.port;
}

for (
  const [name, value] of [
    ["HERALD_GATE_ERROR_MARGIN", "two points"],
    ["HERALD_GATE_P95_MS", "-1"],
    ["HERALD_GATE_MIN_EVENTS", "many"],
  ]
) {
  Deno.test(`deploy: ${name}=${value} is refused before anything is touched`, async () => {
    const state = await freshState();
    const run = await manager(
      ["deploy", "--env", "production", "--canary", "10"],
      env(state, { [name]: value }),
    );
    assert.equal(run.code, 2, run.out);
    assert.match(run.out, new RegExp(`${name} must be a number ≥ 0`));
    assert.deepEqual(await calls(state), []);
  });
}

Deno.test("deploy: --window outside 1…86400 seconds is refused", async () => {
  const state = await freshState();
  for (const window of ["0", "1.5", "86401"]) {
    const run = await manager([
      "deploy",
      "--env",
      "production",
      "--canary",
      "10",
      "--window",
      window,
    ], env(state));
    assert.equal(run.code, 2, window);
    assert.match(run.out, /--window must be whole seconds 1…86400/);
  }
  assert.deepEqual(await calls(state), []);
});

Deno.test("deploy: each gate threshold decides on its own (health-check over a canary whose pushes fail)", async () => {
  const state = await freshState();
  const bad = `bad-${crypto.randomUUID()}`;
  await fcmFails(bad, "THIRD_PARTY_AUTH_ERROR");
  const good = `good-${crypto.randomUUID()}`;
  const check = (extra: Record<string, string>) =>
    manager(
      ["health-check", "--url", `${stack.apiUrl}/functions/v1`, "--window", "3"],
      env(state, { HERALD_GATE_MIN_EVENTS: "2", ...extra }),
      () => Promise.all([notify(true, bad), notify(false, good)]),
    );
  const strict = await check({});
  assert.equal(strict.code, 1, strict.out);
  assert.match(strict.out, /FAIL error ratio/);
  const lenient = await check({ HERALD_GATE_ERROR_MARGIN: "1" });
  assert.equal(lenient.code, 0, lenient.out);
  assert.match(lenient.out, /ok {3}error ratio/);
  const slow = await check({ HERALD_GATE_ERROR_MARGIN: "1", HERALD_GATE_P95_MS: "1" });
  assert.equal(slow.code, 1, slow.out);
  assert.match(slow.out, /FAIL canary p95: \d+ ms \(under 1 ms\)/);
  const quiet = await check({ HERALD_GATE_ERROR_MARGIN: "1", HERALD_GATE_MIN_EVENTS: "1000000" });
  assert.equal(quiet.code, 1, quiet.out);
  assert.match(
    quiet.out,
    /FAIL canary traffic: \d+ requests and attempts \(at least 1000000 to judge\)/,
  );
});

Deno.test("deploy: with PROMETHEUS_URL unreachable the gate cannot judge, and the canary is rolled back", async () => {
  const state = await freshState();
  const prometheus = `http://127.0.0.1:${closedPort()}`;
  const run = await manager(
    ["deploy", "--env", "production", "--canary", "10", "--window", "2"],
    env(state, { PROMETHEUS_URL: prometheus }),
  );
  assert.equal(run.code, 1, run.out);
  assert.match(run.out, /through Prometheus/);
  assert.ok(
    run.out.includes(`could not judge the canary: Prometheus at ${prometheus} did not answer`),
  );
  assert.match(run.out, /rolled back by the health gate/);
  assert.equal((await releases()).at(-1)?.state, "rolled_back");
  assert.equal((await sql`select percent from herald.dispatch_canary`)[0].percent, 0);
  const check = await manager(
    ["health-check", "--url", `${stack.apiUrl}/functions/v1`, "--window", "1"],
    env(state, { PROMETHEUS_URL: prometheus }),
  );
  assert.equal(check.code, 1);
  assert.match(check.out, /FAILED: the gate could not judge the canary: Prometheus at/);
});

Deno.test("deploy: HERALD_PUSH_TAGS=1 pushes the release tag to origin, and a rollback fetches it back when the clone lacks it", async () => {
  const state = await freshState();
  const run = await manager(["deploy", "--env", "staging"], env(state, { HERALD_PUSH_TAGS: "1" }));
  assert.equal(run.code, 0, run.out);
  const [release] = await releases();
  assert.equal(await _git(origin, "rev-parse", `${release.git_tag}^{commit}`), HEAD);
  const without = await manager(["deploy", "--env", "staging"], env(state));
  assert.equal(without.code, 0, without.out);
  const [, second] = await releases();
  await assert.rejects(
    _git(origin, "rev-parse", `${second.git_tag}^{commit}`),
    "not pushed without it",
  );
  await _git(clone, "tag", "--delete", release.git_tag);
  const back = await manager(["rollback", "--env", "staging", "--to", release.git_tag], env(state));
  assert.equal(back.code, 0, back.out);
  assert.equal(await _git(clone, "rev-parse", `${release.git_tag}^{commit}`), HEAD, "fetched");
});

Deno.test("deploy: cleanup", async () => {
  await sql`delete from herald.releases`;
  await sql`update herald.dispatch_canary set percent = 0`;
  await sql.end();
  await Deno.remove(work, { recursive: true });
});
