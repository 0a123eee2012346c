/**
 * scripts/deployment-manager.sh end to end, with the real Supabase CLI (the
 * pinned npm package, first on PATH) pointed by a profile file at a stand-in
 * of the Management API (tests/fakes/management_api.ts: records every
 * request, can fail a chosen one), run as a process from a clone of this
 * repository, with a Kong admin API stand-in and the running test stack as
 * the deployed service — its stable pool behind Kong and its canary pool
 * (HERALD_INSTANCE=canary) answering readiness, metrics and the smoke test.
 *
 * The CLI's database commands cannot reach a loopback Postgres through
 * `--linked` (it dials `db.<ref>.<project_host>:5432`, or the pooler host
 * `link` saved), so the hosted runs set SUPABASE_DB_URL — the manager's own
 * option for a hosted database URL — to the test stack's Postgres: the
 * database commands go `--db-url`, everything else through the Management
 * API as on hosted.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { localKongEnv } from "../scripts/stack/kong/main.ts";
import { CLI_QUIET_ENV, withoutTls } from "../scripts/stack/supabase_cli.ts";
import type { Recorded } from "./fakes/control.ts";
import { startKongAdmin } from "./fakes/kong_admin.ts";
import { startManagementApi, writeProfile } from "./fakes/management_api.ts";
import { adminSql, scratchDatabase, stack } from "./support/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const PRODUCTION = "prodprodprodprodprod";
const STAGING = "stagstagstagstagstag";
const FUNCTIONS = ["dispatch", "health", "hooks", "metrics", "notify"];
const DB_URL = withoutTls(stack.dbUrl);
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
const api = startManagementApi([
  { ref: PRODUCTION, dbUrl: stack.dbUrl },
  { ref: STAGING, dbUrl: stack.dbUrl },
]);
const profile = await writeProfile(work, api.url);

async function _git(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args, cwd, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** A fresh start: a state directory, no releases, no canary share, empty projects. */
async function freshState(): Promise<string> {
  const state = await Deno.makeTempDir({ dir: work, prefix: "state-" });
  await sql`delete from herald.releases`;
  await sql`update herald.dispatch_canary set percent = 0`;
  await (await fetch(`${api.url}/_control/reset`, { method: "POST" })).body?.cancel();
  return state;
}

const smokeToken = () => `smoke-${crypto.randomUUID()}`;

function env(state: string, extra: Record<string, string | undefined> = {}) {
  const base: Record<string, string | undefined> = {
    PATH: `${Deno.execPath().replace(/\/[^/]+$/, "")}:${Deno.env.get("PATH")}`,
    HOME: Deno.env.get("HOME"),
    DENO_DIR: Deno.env.get("DENO_DIR"),
    ...CLI_QUIET_ENV,
    SUPABASE_PROFILE: profile,
    SUPABASE_ACCESS_TOKEN: "sbp_0123456789abcdef0123456789abcdef01234567",
    SUPABASE_PROJECT_REF: PRODUCTION,
    HERALD_STAGING_PROJECT_REF: STAGING,
    SUPABASE_DB_PASSWORD: "stand-in-database-password",
    SUPABASE_DB_URL: DB_URL,
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

/**
 * The CLI commands a run executed, from the manager's own echo (`$ supabase …`):
 * `command subcommand`, global flags left out, and the preflight's
 * (`init`, `db query`) and read-only listings dropped.
 */
function commands(out: string): string[] {
  return [...out.matchAll(/^ {4}\$ supabase (.*)$/gm)]
    .map((m) => m[1].replace(/--workdir \S+ /, "").split(" ").slice(0, 2).join(" "))
    .filter((c) => !/^(init|db query|functions list)\b/.test(c));
}

/** What the Management API stand-in received after request `after` (seq). */
async function requests(after = 0): Promise<Recorded[]> {
  const r = await fetch(`${api.url}/_control/requests?after=${after}`);
  return (await r.json()).requests;
}

/** The stand-in's request count now: pass it to {@linkcode requests} later. */
const mark = async () => (await requests()).at(-1)?.seq ?? 0;

/** Requests that change a project (uploads, activations, deletions, secrets). */
const writes = (rs: Recorded[]) => rs.filter((r) => r.method !== "GET");

/**
 * The deploys in `rs`: each CLI deploy of several slugs is uploads with
 * `bundleOnly=true` closed by one `PUT …/functions` (all or nothing); each
 * with the deployment and git sha stamped into the uploaded `_shared/build.ts`.
 */
function deploys(rs: Recorded[]) {
  const out: { slugs: string[]; ref: string; stamped: string | null; sha: string | null }[] = [];
  let uploads: Recorded[] = [];
  for (const r of rs) {
    if (r.method === "POST" && r.path.endsWith("/functions/deploy")) uploads.push(r);
    if (r.method === "PUT" && r.path.endsWith("/functions")) {
      assert.ok(uploads.every((u) => /[?&]bundleOnly=true/.test(u.query ?? "")), "staged only");
      const build = uploads[0].raw.match(
        /filename="supabase\/functions\/_shared\/build\.ts"[\s\S]*?BUILD = \{([\s\S]*?)\}/,
      )?.[1] ?? "";
      out.push({
        slugs: uploads.map((u) => new URLSearchParams(u.query).get("slug")!).sort(),
        ref: r.path.split("/")[3],
        stamped: build.match(/deployment: "(\w*)"/)?.[1] ?? null,
        sha: build.match(/gitSha: "(\w*)"/)?.[1] ?? null,
      });
      uploads = [];
    }
  }
  assert.deepEqual(uploads, [], "every upload was activated by a bulk update");
  return out;
}

/** The slugs deleted in `rs`. */
const deletions = (rs: Recorded[]) =>
  rs.filter((r) => r.method === "DELETE").map((r) => r.path.split("/").at(-1));

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

/**
 * A live production release of HEAD, recorded and tagged as a deploy would
 * leave it, without deploying: for tests whose subject comes after it.
 */
async function seedLive() {
  const latest = [...Deno.readDirSync(`${ROOT}/supabase/migrations`)].map((e) => e.name).sort()
    .at(-1)!;
  const [row] = await sql`insert into herald.releases (git_sha, git_tag, state, latest_migration)
    values (${HEAD}, 'herald/production/seed', 'live', ${latest})
    returning id, git_tag, latest_migration`;
  await _git(clone, "tag", "--force", "herald/production/seed", HEAD);
  return row;
}

/**
 * HEAD's functions live on `ref` as a deploy leaves them: stamped `deployment`
 * (the canary under its `-canary` slugs), uploaded by the real CLI in one
 * `functions deploy`, without the rest of a deploy (backup, db push, smoke
 * test, record): for tests whose subject comes after it.
 */
async function seedFunctions(ref: string, deployment: "stable" | "canary") {
  const dir = await Deno.makeTempDir({ dir: work, prefix: "seed-" });
  await _git(clone, "worktree", "add", "--quiet", "--detach", "--force", dir, HEAD);
  try {
    const stamp = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/stamp_build.ts", "--deployment", deployment],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(stamp.success, new TextDecoder().decode(stamp.stderr));
    const slugs = FUNCTIONS.map((f) => deployment === "canary" ? `${f}-canary` : f);
    const deploy = await new Deno.Command(`${ROOT}/node_modules/.bin/supabase`, {
      args: ["--workdir", dir, "functions", "deploy", ...slugs, "--project-ref", ref, "--use-api"],
      cwd: dir,
      env: { ...env(dir), PATH: `${ROOT}/node_modules/.bin:${Deno.env.get("PATH")}` },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(deploy.success, new TextDecoder().decode(deploy.stderr));
  } finally {
    await _git(clone, "worktree", "remove", "--force", dir);
  }
}

/** A superuser connection to another database of the stack's cluster. */
function adminSqlAt(url: string) {
  return postgres(url, { max: 1, onnotice: () => {} });
}

const releases = () =>
  sql`select id, git_sha, git_tag, state, canary_percent, functions, latest_migration
      from herald.releases order by id`;

Deno.test("deploy: --help says every command; no command or an unknown one is a usage error", async () => {
  const state = await freshState();
  const help = await manager(["--help"], env(state));
  assert.match(help.out, /node_modules\/\.bin\/supabase/);
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
  assert.deepEqual(await requests(), [], "nothing was touched");
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
    // Without SUPABASE_DB_URL a hosted deploy needs the database password (--linked).
    const run = await manager(
      ["deploy", "--env", "production", "--canary", "10"],
      env(state, { [missing]: undefined, SUPABASE_DB_URL: undefined }),
    );
    assert.equal(run.code, 2, run.out);
    assert.match(run.out, new RegExp(`needs ${missing}: set it`));
    assert.deepEqual(commands(run.out), []);
    assert.deepEqual(await requests(), []);
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
  assert.deepEqual(await requests(), []);
});

Deno.test("deploy: staging runs link, db push, every function deployed stamped stable, the smoke test, and records the release", async () => {
  const state = await freshState();
  const run = await manager(["deploy", "--env", "staging"], env(state));
  assert.equal(run.code, 0, run.out);
  assert.deepEqual(commands(run.out), ["link --project-ref", "db push", "functions deploy"]);
  assert.match(run.out, new RegExp(`\\$ supabase link --project-ref ${STAGING}\n`));
  assert.match(
    run.out,
    /\$ supabase --workdir \S+ db push --db-url '\*\*\*' --include-all --yes\n/,
  );
  assert.match(run.out, /\$ supabase --workdir \S+ functions deploy .* --use-api\n/);
  const rs = await requests();
  assert.deepEqual(deploys(rs), [{ slugs: FUNCTIONS, ref: STAGING, stamped: "stable", sha: HEAD }]);
  assert.ok(rs.every((r) => r.path.startsWith(`/v1/projects/${STAGING}`)), "staging only");
  assert.ok(rs.every((r) => r.headers["user-agent"] === "SupabaseCLI/2.117.0"), "the real CLI");
  // Uploads carry the functions' import map from inside supabase/functions, never deno.lock.
  const upload = rs.find((r) => r.method === "POST")!;
  assert.match(upload.raw, /filename="supabase\/functions\/deno.json"/);
  assert.doesNotMatch(upload.raw, /filename="[^"]*deno\.lock"/);
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
  assert.ok((await requests()).every((r) => !r.path.includes(PRODUCTION)));
});

Deno.test("deploy: a migration the CLI refuses stops the deploy at db push, with the CLI's message, and no function is deployed", async () => {
  const state = await freshState();
  await Deno.writeTextFile(
    `${clone}/supabase/migrations/29991231000000_refused.sql`,
    "select no_such_column from herald.releases;\n",
  );
  await _git(clone, "add", ".");
  await _git(clone, "commit", "--quiet", "-m", "a migration the database refuses");
  try {
    const run = await manager(["deploy", "--env", "staging"], env(state));
    assert.equal(run.code, 1, run.out);
    assert.match(
      run.out,
      /FAILED: supabase db push exited 1: .*column "no_such_column" does not exist/,
    );
    assert.deepEqual(commands(run.out), ["link --project-ref", "db push"]);
    assert.deepEqual(writes(await requests()), []);
  } finally {
    await _git(clone, "reset", "--quiet", "--hard", HEAD);
  }
});

/** Makes the stand-in refuse uploads of `slug` (as a bundling failure does). */
async function refuseUploads(slug: string) {
  const r = await fetch(`${api.url}/_control/fail`, {
    method: "POST",
    body: JSON.stringify({
      method: "POST",
      path: `/functions/deploy\\?(.*&)?slug=${slug}(&|$)`,
      status: 400,
      body: { message: "Failed to bundle the function" },
    }),
  });
  assert.equal(r.status, 204);
}

Deno.test("deploy: an upload the Management API refuses: the CLI activates the others anyway; the manager says which, records nothing, and a rerun converges", async () => {
  const state = await freshState();
  // Every function live at version 1, as a first deploy leaves them.
  await seedFunctions(STAGING, "stable");
  await refuseUploads("hooks");
  const after = await mark();
  const run = await manager(["deploy", "--env", "staging"], env(state));
  assert.equal(run.code, 1, run.out);
  assert.match(run.out, /FAILED: supabase functions deploy exited 1: .*Failed to bundle/);
  // What CLI 2.117.0 does (not all or nothing): the bulk update carries the uploads that succeeded.
  const rs = await requests(after);
  const put = rs.find((r) => r.method === "PUT");
  assert.ok(put, "the CLI still sent the bulk update");
  assert.deepEqual(
    (put.body as { slug: string }[]).map((f) => f.slug).sort(),
    FUNCTIONS.filter((f) => f !== "hooks"),
  );
  assert.match(
    run.out,
    /the CLI activated dispatch, health, metrics, notify anyway .*Run the deploy again/,
  );
  assert.deepEqual(
    api.functions(STAGING).map((f) => [f.slug, f.version]),
    FUNCTIONS.map((f) => [f, f === "hooks" ? 1 : 2]),
  );
  assert.equal((await releases()).length, 0, "the failed deploy recorded no release");
  const again = await manager(["deploy", "--env", "staging"], env(state));
  assert.equal(again.code, 0, again.out);
  assert.deepEqual(
    api.functions(STAGING).map((f) => [f.slug, f.version]),
    FUNCTIONS.map((f) => [f, f === "hooks" ? 2 : 3]),
  );
});

Deno.test("deploy: a canary whose upload is refused is withdrawn: no canary slug is left and it gets no traffic", async () => {
  const state = await freshState();
  await refuseUploads("hooks-canary");
  const run = await manager(["deploy", "--env", "production", "--canary", "10"], env(state));
  assert.equal(run.code, 1, run.out);
  assert.match(run.out, /the CLI activated dispatch-canary, health-canary, metrics-canary/);
  assert.match(run.out, /the canary's deploy failed and what it left was withdrawn/);
  assert.deepEqual(api.functions(PRODUCTION), [], "no canary slug is left");
  assert.equal((await sql`select percent from herald.dispatch_canary`)[0].percent, 0);
  assert.equal((await releases()).length, 0);
});

Deno.test("deploy: production canary, gate passed, promoted: backup, push, canary slugs at 10 %, then stable redeployed and the canary removed", async () => {
  const state = await freshState();
  // A live stable release to back up and supersede.
  await seedLive();
  await seedFunctions(PRODUCTION, "stable");
  const afterFirst = await mark();
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
  assert.deepEqual(commands(run.out), [
    "link --project-ref",
    "db dump",
    "db dump",
    "functions download",
    "db push",
    "functions deploy",
    "functions deploy",
    ...FUNCTIONS.map(() => "functions delete"),
  ]);
  const rs = await requests(afterFirst);
  assert.deepEqual(deploys(rs), [
    { slugs: FUNCTIONS.map((f) => `${f}-canary`), ref: PRODUCTION, stamped: "canary", sha: HEAD },
    { slugs: FUNCTIONS, ref: PRODUCTION, stamped: "stable", sha: HEAD },
  ]);
  assert.deepEqual(deletions(rs), FUNCTIONS.map((f) => `${f}-canary`));
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
  // One backup, made before the canary went out (the first production deploy's own: its test).
  const dirs = [...Deno.readDirSync(`${state}/backups`)].map((e) => e.name).sort();
  assert.equal(dirs.length, 1);
  const [dir] = dirs;
  assert.match(dir, /^production-\d{8}T\d{6}Z(-\d+)?$/);
  assert.ok(listed.out.includes(dir));
  assert.ok(listed.out.includes(PRODUCTION));
  assert.ok(listed.out.includes(`release r${old.id} ${HEAD.slice(0, 12)}`));
  assert.ok(listed.out.includes(`functions ${FUNCTIONS.join(",")}`));
  for (const file of ["schema.sql", "data.sql", "backup.json"]) {
    assert.ok(Deno.statSync(`${state}/backups/${dir}/${file}`).isFile, file);
  }
  const saved = await Deno.readTextFile(
    `${state}/backups/${dir}/supabase/functions/_shared/build.ts`,
  );
  assert.match(saved, /deployment: "stable"/, "the live stable bundle was downloaded");
  // pg_dump's own output, run from the CLI's script.
  const schema = await Deno.readTextFile(`${state}/backups/${dir}/schema.sql`);
  assert.match(schema, /CREATE TABLE IF NOT EXISTS "herald"\."releases"/);
  assert.doesNotMatch(schema, /"supabase_migrations"/, "the CLI's scope: its own schemas left out");
  const data = await Deno.readTextFile(`${state}/backups/${dir}/data.sql`);
  assert.match(data, /INSERT INTO "herald"\."releases"/);
});

Deno.test("deploy: a canary whose error ratio is over the margin is rolled back by itself and the run exits 1", async () => {
  const state = await freshState();
  await seedLive();
  const bad = `bad-${crypto.randomUUID()}`;
  await fcmFails(bad, "THIRD_PARTY_AUTH_ERROR");
  const good = `good-${crypto.randomUUID()}`;
  const before = await mark();
  const run = await manager(
    ["deploy", "--env", "production", "--canary", "10", "--window", "8"],
    env(state, { HERALD_GATE_MIN_EVENTS: "10" }),
    () => Promise.all([notify(true, bad), notify(false, good), notify(false, good)]),
  );
  assert.equal(run.code, 1, run.out);
  assert.match(run.out, /FAIL error ratio: canary/);
  assert.match(run.out, /rolled back by the health gate/);
  const rs = await requests(before);
  assert.deepEqual(deploys(rs).map((d) => d.stamped), ["canary"], "stable was never redeployed");
  assert.deepEqual(deletions(rs), FUNCTIONS.map((f) => `${f}-canary`));
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

  const before = await mark();
  const promoted = await manager(["promote-canary"], env(state));
  assert.equal(promoted.code, 0, promoted.out);
  const rs = await requests(before);
  assert.deepEqual(deploys(rs), [{
    slugs: FUNCTIONS,
    ref: PRODUCTION,
    stamped: "stable",
    sha: HEAD,
  }]);
  assert.deepEqual(deletions(rs), FUNCTIONS.map((f) => `${f}-canary`));
  assert.deepEqual(api.functions(PRODUCTION).map((f) => f.slug), FUNCTIONS);
  assert.equal((await releases())[0].state, "live");
  assert.equal((await sql`select percent from herald.dispatch_canary`)[0].percent, 0);
  const none = await manager(["promote-canary"], env(state));
  assert.equal(none.code, 1);
  assert.match(none.out, /no canary is in flight/);
});

Deno.test("deploy: rollback with a canary in flight withdraws it; stable is not redeployed", async () => {
  const state = await freshState();
  // A canary in flight at 10 %, as deploy --hold leaves one (the --hold test makes one for real).
  await seedFunctions(PRODUCTION, "canary");
  const latest = [...Deno.readDirSync(`${ROOT}/supabase/migrations`)].map((e) => e.name).sort()
    .at(-1)!;
  await sql`insert into herald.releases (git_sha, state, canary_percent, latest_migration)
    values (${HEAD}, 'canary', 10, ${latest})`;
  await sql`update herald.dispatch_canary set percent = 10`;
  const before = await mark();
  const run = await manager(["rollback"], env(state));
  assert.equal(run.code, 0, run.out);
  const rs = await requests(before);
  assert.deepEqual(deploys(rs), []);
  assert.deepEqual(deletions(rs), FUNCTIONS.map((f) => `${f}-canary`));
  assert.equal((await releases())[0].state, "rolled_back");
  assert.equal((await sql`select percent from herald.dispatch_canary`)[0].percent, 0);
});

Deno.test("deploy: rollback --to a named release redeploys its tag; with no --to, the previous live one", async () => {
  const state = await freshState();
  const r1 = await seedLive();
  // A later release from another commit, live now (recorded as a deploy of it would).
  await _git(clone, "commit", "--quiet", "--allow-empty", "-m", "a later release");
  const later = await _git(clone, "rev-parse", "HEAD");
  await _git(clone, "tag", "herald/production/later", later);
  await sql`update herald.releases set state = 'superseded'`;
  await sql`insert into herald.releases (git_sha, git_tag, state, latest_migration)
            values (${later}, 'herald/production/later', 'live', ${r1.latest_migration})`;
  try {
    const before = await mark();
    const run = await manager(["rollback", "--to", r1.git_tag], env(state));
    assert.equal(run.code, 0, run.out);
    assert.deepEqual(deploys(await requests(before)), [
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
  const r1 = await seedLive();
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
    const before = await mark();
    const run = await manager(["rollback", "--to", `r${r1.id}`], env(state));
    assert.equal(run.code, 1, run.out);
    assert.match(run.out, new RegExp(`predates ${contract}, marked herald:breaking`));
    assert.deepEqual(deploys(await requests(before)), []);
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
    assert.doesNotMatch(run.out, /--linked/, "self-hosted never uses --linked");
    assert.match(
      run.out,
      /\$ supabase --workdir \S+ db push --db-url '\*\*\*' --include-all --yes\n/,
    );
    assert.deepEqual(await requests(), [], "nor the Management API");
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
    env(state, { KONG_ADMIN_URL: "http://127.0.0.1:1" }),
  );
  assert.equal(run.code, 2);
  assert.match(run.out, /needs HERALD_STABLE_FUNCTIONS_DIR, HERALD_CANARY_FUNCTIONS_DIR/);
  assert.deepEqual(commands(run.out), []);
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
  await fetch(`${api.url}/_control/fail`, {
    method: "POST",
    body: JSON.stringify({ method: "POST", path: "/functions/deploy", status: 500 }),
  }).then((r) => r.body?.cancel());
  const run = await manager(["deploy", "--env", "staging"], env(state));
  assert.equal(run.code, 1);
  assert.ok(!run.out.includes(stack.serviceRoleKey));
  assert.ok(!run.out.includes("stand-in-database-password"));
  assert.ok(!run.out.includes(DB_URL), "the database URL (with its password) is masked");
});

Deno.test("deploy: backup on its own saves dumps and every live function; list-backups and status show them", async () => {
  const state = await freshState();
  await seedLive();
  await seedFunctions(PRODUCTION, "stable");
  const empty = await manager(["list-backups"], env(state, { HERALD_BACKUP_DIR: `${state}/none` }));
  assert.equal(empty.code, 0);
  assert.match(empty.out, /no backups under/);
  const backup = await manager(["backup"], env(state));
  assert.equal(backup.code, 0, backup.out);
  assert.deepEqual(commands(backup.out), [
    "link --project-ref",
    "db dump",
    "db dump",
    "functions download",
  ]);
  assert.match(backup.out, /\$ supabase db dump --db-url '\*\*\*' --dry-run\n/);
  assert.match(backup.out, /\$ supabase db dump --db-url '\*\*\*' --data-only --dry-run\n/);
  // No canary live: one download fetches every function.
  assert.match(backup.out, new RegExp(`functions download --project-ref ${PRODUCTION} --use-api`));
  const dirs = [...Deno.readDirSync(`${state}/backups`)].map((e) => e.name).sort();
  const dir = dirs.at(-1)!;
  const manifest = JSON.parse(await Deno.readTextFile(`${state}/backups/${dir}/backup.json`));
  assert.equal(manifest.project, PRODUCTION);
  assert.deepEqual(manifest.functions.map((f: { slug: string }) => f.slug), FUNCTIONS);
  for (const f of FUNCTIONS) {
    assert.ok(Deno.statSync(`${state}/backups/${dir}/supabase/functions/${f}/index.ts`).isFile, f);
  }

  // What a backup holds is enough to redeploy it: its restore command uploads the same files.
  const before = api.functions(PRODUCTION);
  assert.equal(manifest.restore.length, 1);
  const restore = new Deno.Command("sh", {
    args: ["-c", manifest.restore[0]],
    env: { ...env(state), PATH: `${ROOT}/node_modules/.bin:${Deno.env.get("PATH")}` },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  });
  const restored = await restore.output();
  assert.ok(restored.success, new TextDecoder().decode(restored.stderr));
  const after = api.functions(PRODUCTION);
  for (const f of FUNCTIONS) {
    const was = before.find((x) => x.slug === f)!;
    const now = after.find((x) => x.slug === f)!;
    assert.equal(now.version, (was.version as number) + 1, f);
    assert.equal(now.ezbr_sha256, was.ezbr_sha256, `${f}: the same files, byte for byte`);
    assert.equal(now.verify_jwt, false, `${f}: verify_jwt kept`);
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
  assert.match(status.out, /notify +v2 +[0-9a-f]{64}/, "v2: the restore redeployed it");
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
    assert.deepEqual(await requests(), []);
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
  assert.deepEqual(await requests(), []);
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

Deno.test("deploy: a database URL without sslmode to a server without TLS is refused with the hint, before anything is touched", async () => {
  const state = await freshState();
  for (const kind of ["hosted", "self-hosted"]) {
    const extra = kind === "hosted" ? {} : {
      ...localKongEnv(stack),
      KONG_ADMIN_URL: "http://127.0.0.1:1",
      HERALD_STABLE_FUNCTIONS_DIR: `${state}/stable`,
      HERALD_CANARY_FUNCTIONS_DIR: `${state}/canary`,
    };
    const run = await manager(
      ["deploy", "--env", "production", "--canary", "10"],
      env(state, { ...extra, SUPABASE_DB_URL: stack.dbUrl }),
    );
    assert.equal(run.code, 2, run.out);
    assert.match(run.out, /does not offer TLS.*\?sslmode=disable/s, kind);
    assert.ok(!run.out.includes(stack.dbUrl), "the URL is masked");
    assert.deepEqual(commands(run.out).filter((c) => c !== "link --project-ref"), [], kind);
  }
  assert.deepEqual(writes(await requests()), []);
  assert.equal((await releases()).length, 0);
});

Deno.test("deploy: without HERALD_SMOKE_DEVICE_TOKEN it refuses before backup, migrations or functions", async () => {
  const state = await freshState();
  const run = await manager(
    ["deploy", "--env", "production", "--canary", "10"],
    env(state, { HERALD_SMOKE_DEVICE_TOKEN: undefined }),
  );
  assert.equal(run.code, 2, run.out);
  assert.match(run.out, /the smoke test needs HERALD_SMOKE_DEVICE_TOKEN/);
  assert.deepEqual(commands(run.out), []);
  assert.deepEqual(await requests(), [], "not even link");
});

Deno.test("deploy: a config.toml key the CLI does not know is refused before anything is touched", async () => {
  const state = await freshState();
  const config = `${clone}/supabase/config.toml`;
  await Deno.writeTextFile(
    config,
    (await Deno.readTextFile(config)).replace(
      "[functions.notify]\nverify_jwt = false",
      "[functions.notify]\nverify_jwts = false",
    ),
  );
  await _git(clone, "commit", "--quiet", "-am", "a misspelt key");
  try {
    const run = await manager(["deploy", "--env", "staging"], env(state));
    assert.equal(run.code, 2, run.out);
    assert.match(run.out, /keys the Supabase CLI does not know .*functions\.notify\.verify_jwts/);
    assert.deepEqual(writes(await requests()), []);
  } finally {
    await _git(clone, "reset", "--quiet", "--hard", HEAD);
  }
});

Deno.test("deploy: a migration merged out of order is applied by the deploy's db push", async () => {
  const state = await freshState();
  // Older than the newest migration already applied: the CLI wants --include-all for it.
  const late = "20261122150000_deploy_test_late_branch.sql";
  await Deno.writeTextFile(
    `${clone}/supabase/migrations/${late}`,
    "create table herald.deploy_test_late_branch (id int);\n",
  );
  await _git(clone, "add", ".");
  await _git(clone, "commit", "--quiet", "-m", "a branch's migration, merged late");
  try {
    const run = await manager(["deploy", "--env", "staging"], env(state));
    assert.match(run.out, /Applying migration 20261122150000_deploy_test_late_branch\.sql/);
    // The service under test is the running stack, which does not run the clone's new
    // commit: the deploy goes on to deploy the functions, and its smoke test sees that.
    assert.equal(run.code, 1, run.out);
    assert.match(run.out, /the deploy did not take/);
    assert.deepEqual(commands(run.out), ["link --project-ref", "db push", "functions deploy"]);
    const [row] = await sql`select to_regclass('herald.deploy_test_late_branch') as t,
      (select count(*)::int from supabase_migrations.schema_migrations
        where version = '20261122150000') as recorded`;
    assert.equal(row.t, "herald.deploy_test_late_branch");
    assert.equal(row.recorded, 1);
  } finally {
    await sql`drop table if exists herald.deploy_test_late_branch`;
    await sql`delete from supabase_migrations.schema_migrations where version = '20261122150000'`;
    await _git(clone, "reset", "--quiet", "--hard", HEAD);
  }
});

Deno.test("deploy: a database password with $( ), quotes and $ is passed to pg_dump verbatim: the backup works and runs nothing", async () => {
  const state = await freshState();
  const marker = `${state}/pwned`;
  const password = `x$(touch ${marker})"y$HOME\\z`;
  const role = "herald_backup_test";
  await sql.unsafe(
    `create role ${role} login superuser password '${password.replaceAll("'", "''")}'`,
  );
  try {
    const url = `postgresql://${role}:${
      encodeURIComponent(password)
    }@127.0.0.1:${stack.ports.postgres}/postgres?sslmode=disable`;
    const run = await manager(["backup"], env(state, { SUPABASE_DB_URL: url }));
    assert.equal(run.code, 0, run.out);
    assert.ok(!(await Deno.stat(marker).then(() => true, () => false)), "nothing was run");
    assert.ok(!run.out.includes(password), "the password is never printed");
    const [dir] = [...Deno.readDirSync(`${state}/backups`)].map((e) => e.name);
    const schema = await Deno.readTextFile(`${state}/backups/${dir}/schema.sql`);
    assert.match(schema, /CREATE TABLE IF NOT EXISTS "herald"\."releases"/);
    // Only the operator reads a backup.
    assert.equal((await Deno.stat(`${state}/backups/${dir}`)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(`${state}/backups/${dir}/data.sql`)).mode! & 0o777, 0o600);
  } finally {
    await sql.unsafe(`drop role ${role}`);
  }
});

Deno.test("deploy: the first production deploy onto a database Herald has never migrated works", async () => {
  const state = await freshState();
  await scratchDatabase(async (url) => {
    const run = await manager(
      ["deploy", "--env", "production"],
      env(state, { SUPABASE_DB_URL: withoutTls(url) }),
    );
    assert.equal(run.code, 0, run.out);
    // Even the first production deploy backs up first: the dumps, and nothing live yet.
    const [dir, ...more] = [...Deno.readDirSync(`${state}/backups`)].map((e) => e.name);
    assert.deepEqual(more, []);
    const manifest = JSON.parse(await Deno.readTextFile(`${state}/backups/${dir}/backup.json`));
    assert.equal(manifest.live_release, null);
    assert.deepEqual(manifest.functions, []);
    for (const file of ["schema.sql", "data.sql"]) {
      assert.ok(Deno.statSync(`${state}/backups/${dir}/${file}`).isFile, file);
    }
    const fresh = adminSqlAt(url);
    try {
      const rows = await fresh`select state, git_sha from herald.releases`;
      assert.deepEqual(rows.map((r) => [r.state, r.git_sha]), [["live", HEAD]]);
    } finally {
      await fresh.end();
    }
  });
});

Deno.test("deploy: a migration the CLI would apply under a name rollback's guard cannot see is refused before anything is touched", async () => {
  const state = await freshState();
  await Deno.writeTextFile(
    `${clone}/supabase/migrations/20261210000000_drop-old-Column.sql`,
    "-- herald:breaking\nselect 1;\n",
  );
  await _git(clone, "add", ".");
  await _git(clone, "commit", "--quiet", "-m", "a misnamed contract migration");
  try {
    const run = await manager(["deploy", "--env", "staging"], env(state));
    assert.equal(run.code, 2, run.out);
    assert.match(run.out, /20261210000000_drop-old-Column\.sql would be applied by the CLI/);
    assert.deepEqual(commands(run.out), []);
    assert.deepEqual(await requests(), []);
  } finally {
    await _git(clone, "reset", "--quiet", "--hard", HEAD);
  }
});

Deno.test("deploy: a CLI command that hangs fails its step after HERALD_CLI_TIMEOUT_S, and nothing waits for it", async () => {
  const state = await freshState();
  const slow = await fetch(`${api.url}/_control/behaviour`, {
    method: "POST",
    body: JSON.stringify({ latency_ms: 20_000 }),
  });
  assert.equal(slow.status, 204);
  const started = Date.now();
  const run = await manager(["status"], env(state, { HERALD_CLI_TIMEOUT_S: "2" }));
  assert.equal(run.code, 1, run.out);
  assert.match(
    run.out,
    /FAILED: supabase link --project-ref did not finish within 2 s \(HERALD_CLI_TIMEOUT_S\)/,
  );
  assert.ok(Date.now() - started < 15_000, "it did not wait for the stalled API");
  await (await fetch(`${api.url}/_control/reset`, { method: "POST" })).body?.cancel();
});

Deno.test("deploy: cleanup", async () => {
  await sql`delete from herald.releases`;
  await sql`update herald.dispatch_canary set percent = 0`;
  await sql.end();
  await api.close();
  await Deno.remove(work, { recursive: true });
});
