/**
 * Herald's deployment manager, run as `scripts/deployment-manager.sh`: the
 * one entry point the workflows and a human on call use. `--help` says what
 * each command does; DESIGN.md "Deploying" why it works this way.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  failsEarly,
  increase,
  judge,
  snapshotFromExposition,
  snapshotFromPrometheus,
  type Thresholds,
} from "./gate.ts";
import { readiness, scrape, type Service, smokeTest } from "./probe.ts";
import { unknownConfigKeys } from "./config_keys.ts";
import {
  breakingSince,
  type DeployedFunction,
  git,
  listReleases,
  migrationsOf,
  misnamedMigrations,
  recordRelease,
  type Release,
  setReleaseState,
} from "./releases.ts";
import { masked, run, say, secret, step, StepFailed } from "./shell.ts";
import {
  canaryShare,
  dbFlags,
  deployFunctions,
  type Environment,
  type HostedFunction,
  link,
  listFunctions,
  listHosted,
  pushMigrations,
  removeCanaryFunctions,
  setCanaryShare,
  type Target,
  targetQuery,
} from "./targets.ts";

/** The checkout releases are cut from: HERALD_REPO, else the one this script is in. */
const ROOT = Deno.env.get("HERALD_REPO") ||
  new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

export const HELP = `Herald's deployment manager.

Usage: scripts/deployment-manager.sh <command> [options]

Commands:
  deploy --env staging|production [--canary PERCENT] [--window SECONDS] [--hold]
      staging: apply migrations, deploy every function, smoke-test, record the release.
      production: back up, apply migrations, deploy the canary, smoke-test it, give it
      PERCENT of traffic, watch it for SECONDS (default 300), then promote it or roll it
      back (exit 1); --hold leaves a canary that passed in flight for promote-canary.
      Without --canary, production is deployed whole after the smoke test.
  promote-canary [--env production]
      Put the canary's release into stable and retire the canary.
  rollback [--env production] [--to RELEASE]
      Withdraw the canary in flight; with --to (a release id or tag), or with no canary,
      redeploy that (default: the previous live) release from its git tag. Refused across
      a migration marked "-- herald:breaking".
  backup [--env production]
      Save a schema and data dump and the live function bundles under HERALD_BACKUP_DIR.
  list-backups
      What backup saved, newest first.
  health-check --url URL [--canary-url URL] [--window SECONDS] [--expect-sha SHA]
      Readiness of stable and canary, then the gate over the window (default 60):
      exit 0 when the canary is as healthy as stable, 1 when not.
  status [--env production]
      Releases, live functions and the canary's share.

The Supabase CLI it runs is the repository's pinned one (node_modules/.bin/supabase, from
npm ci) when installed, else the first supabase on PATH. Backups need pg_dump.

Environment:
  SUPABASE_ACCESS_TOKEN        hosted: the CLI's token (Management API)
  SUPABASE_PROJECT_REF         hosted production project
  HERALD_STAGING_PROJECT_REF   hosted staging project
  SUPABASE_DB_PASSWORD         hosted: the database password (link, db push, db dump), unless
                               SUPABASE_DB_URL is set
  SUPABASE_DB_URL              self-hosted: required; hosted: optional, the database commands then
                               use it (--db-url) instead of --linked (e.g. the session pooler's URL
                               where the runner has no IPv6). A server without TLS needs
                               ?sslmode=disable in the URL (the CLI refuses it otherwise)
  SUPABASE_SERVICE_ROLE_KEY    the environment's service-role (or secret) key: readiness, metrics, smoke test
  HERALD_SMOKE_DEVICE_TOKEN    an FCM registration token for the smoke test (validate_only: nothing is shown)
  HERALD_FUNCTIONS_URL         functions base; hosted: default https://<ref>.supabase.co/functions/v1,
                               self-hosted: required (stable through Kong)
  HERALD_CANARY_FUNCTIONS_URL  the canary's functions base; hosted: when it is not the -canary
                               slugs, self-hosted: required (the canary runtime, not through Kong)
  KONG_ADMIN_URL               self-hosted: Kong's admin API; with it, also SUPABASE_DB_URL,
                               HERALD_FUNCTIONS_URL, HERALD_CANARY_FUNCTIONS_URL,
                               HERALD_STABLE_FUNCTIONS_DIR, HERALD_CANARY_FUNCTIONS_DIR and
                               kong.yml's variables (docs/SELF_HOSTING.md)
  HERALD_REPO                  the git checkout to release from (default: this script's own)
  HERALD_BACKUP_DIR            where backups go (default .deploy/backups)
  HERALD_PUSH_TAGS             1: push each release's git tag to origin
  PROMETHEUS_URL               the gate asks Prometheus instead of scraping the metrics endpoint
  HERALD_GATE_ERROR_MARGIN     how much worse the canary's error ratio may be (default 0.02)
  HERALD_GATE_P95_MS           the canary's p95 limit (default 500)
  HERALD_GATE_MIN_EVENTS       canary requests plus attempts needed to judge (default 10)
  HERALD_CLI_TIMEOUT_S         how long one CLI command may run (default 900)
`;

/** Thrown for a usage or credentials problem: nothing was touched. */
class Refused extends Error {}

function _env(name: string): string | undefined {
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}

function _urlPassword(url: string | undefined): string | undefined {
  try {
    return url ? decodeURIComponent(new URL(url).password) || undefined : undefined;
  } catch {
    return undefined;
  }
}

function _need(names: string[], why: string): void {
  const missing = names.filter((n) => !_env(n));
  if (missing.length) throw new Refused(`${why} needs ${missing.join(", ")}: set it and run again`);
}

/** Builds the target of `environment` from the environment, refusing before anything is touched. */
export function resolveTarget(environment: Environment): Target {
  const key = _env("SUPABASE_SERVICE_ROLE_KEY");
  for (const name of ["SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_PASSWORD", "SUPABASE_DB_URL"]) {
    secret(_env(name));
  }
  // The URL's password too: the CLI and pg_dump may print the URL in pieces.
  secret(_urlPassword(_env("SUPABASE_DB_URL")));
  if (_env("KONG_ADMIN_URL")) {
    _need(
      [
        "SUPABASE_DB_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "HERALD_FUNCTIONS_URL",
        "HERALD_CANARY_FUNCTIONS_URL",
        "HERALD_STABLE_FUNCTIONS_DIR",
        "HERALD_CANARY_FUNCTIONS_DIR",
      ],
      `A self-hosted ${environment} deploy (KONG_ADMIN_URL is set)`,
    );
    const base = {
      environment,
      root: ROOT,
      kind: "self-hosted" as const,
      dbUrl: _env("SUPABASE_DB_URL")!,
      kongAdminUrl: _env("KONG_ADMIN_URL")!,
      stableDir: _env("HERALD_STABLE_FUNCTIONS_DIR")!,
      canaryDir: _env("HERALD_CANARY_FUNCTIONS_DIR")!,
      service: {
        url: _env("HERALD_FUNCTIONS_URL")!,
        canaryUrl: _env("HERALD_CANARY_FUNCTIONS_URL"),
        key: key!,
      },
    };
    return { ...base, query: targetQuery(base) };
  }
  const refName = environment === "staging" ? "HERALD_STAGING_PROJECT_REF" : "SUPABASE_PROJECT_REF";
  const dbUrl = _env("SUPABASE_DB_URL");
  _need(
    [
      "SUPABASE_ACCESS_TOKEN",
      refName,
      ...(dbUrl ? [] : ["SUPABASE_DB_PASSWORD"]),
      "SUPABASE_SERVICE_ROLE_KEY",
    ],
    `A hosted ${environment} deploy`,
  );
  secret(_env("SUPABASE_ACCESS_TOKEN"));
  const ref = _env(refName)!;
  // The CLI's own rule (20 lower-case letters); anything else it refuses after we started.
  if (!/^[a-z]{20}$/.test(ref)) throw new Refused(`${refName} is not a project ref: ${ref}`);
  const base = {
    environment,
    root: ROOT,
    kind: "hosted" as const,
    ref,
    dbUrl,
    service: {
      url: _env("HERALD_FUNCTIONS_URL") ?? `https://${ref}.supabase.co/functions/v1`,
      canaryUrl: _env("HERALD_CANARY_FUNCTIONS_URL"),
      key: key!,
    },
  };
  return { ...base, query: targetQuery(base) };
}

/**
 * Checks, before anything is touched, what would otherwise fail halfway:
 * config.toml keys the CLI does not know (it ignores them silently), pg_dump
 * for a backup, the smoke test's device token.
 *
 * @throws {Refused} naming what to fix
 */
async function preflight(needs: { backup?: boolean; smoke?: boolean } = {}): Promise<void> {
  if (needs.smoke && !_env("HERALD_SMOKE_DEVICE_TOKEN")) {
    throw new Refused("the smoke test needs HERALD_SMOKE_DEVICE_TOKEN: set it and run again");
  }
  const misnamed = await misnamedMigrations(ROOT);
  if (misnamed.length) {
    throw new Refused(
      `supabase/migrations: ${misnamed.join(", ")} would be applied by the CLI but not seen ` +
        "by rollback's herald:breaking guard: name it YYYYMMDDHHmmss_snake_case.sql",
    );
  }
  let unknown: string[];
  try {
    unknown = await unknownConfigKeys(`${ROOT}/supabase/config.toml`);
  } catch (error) {
    if (error instanceof StepFailed) throw error;
    throw new Refused(`supabase/config.toml cannot be read: ${(error as Error).message}`);
  }
  if (unknown.length) {
    throw new Refused(
      `supabase/config.toml has keys the Supabase CLI does not know (it ignores them): ${
        unknown.join(", ")
      }`,
    );
  }
  if (needs.backup && !(await _onPath("pg_dump"))) {
    throw new Refused(
      "backup runs pg_dump (the CLI's dump needs Docker otherwise): install the Postgres " +
        "client of the database's major version (Debian: postgresql-client-<major>)",
    );
  }
}

/**
 * The CLI's refusal of a server without TLS. The first database command of
 * every command is a read or the push itself, so when it fails this way
 * nothing was touched: the manager says so (exit 2) with the fix.
 */
const NO_TLS = /does not support SSL|tls error/i;
const NO_TLS_HINT = "SUPABASE_DB_URL: the server does not offer TLS, and the Supabase CLI " +
  "refuses a connection without it unless the URL says ?sslmode=disable (use that only on a " +
  "network you trust); nothing was touched";

async function _onPath(binary: string): Promise<boolean> {
  const which = await new Deno.Command("sh", {
    args: ["-c", `command -v ${binary}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return which.success;
}

function _thresholds(): Thresholds {
  const num = (name: string, fallback: number) => {
    const raw = _env(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw new Refused(`${name} must be a number ≥ 0`);
    return value;
  };
  return {
    errorMargin: num("HERALD_GATE_ERROR_MARGIN", 0.02),
    p95Ms: num("HERALD_GATE_P95_MS", 500),
    minEvents: num("HERALD_GATE_MIN_EVENTS", 10),
  };
}

function _seconds(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 86_400) {
    throw new Refused(`${name} must be whole seconds 1…86400, got '${raw}'`);
  }
  return value;
}

/** A detached checkout of `sha`, stamped as `deployment`; `remove()` when done. */
async function _checkout(sha: string, deployment: "stable" | "canary") {
  const dir = await Deno.makeTempDir({ prefix: "herald-release-" });
  await git(ROOT, "worktree", "prune"); // the checkouts of a run that was killed
  await git(ROOT, "worktree", "add", "--detach", "--force", dir, sha);
  const stamp = `${dir}/scripts/stamp_build.ts`;
  if (await Deno.stat(stamp).then(() => true, () => false)) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", stamp, "--deployment", deployment],
      cwd: dir,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new StepFailed(`stamping ${sha.slice(0, 12)} as ${deployment} failed`);
    say(new TextDecoder().decode(out.stdout).trim());
  } else {
    say(`${sha.slice(0, 12)} predates build stamping: it reports the environment's build`);
  }
  return {
    dir,
    remove: () => git(ROOT, "worktree", "remove", "--force", dir).catch(() => {}),
  };
}

async function _expectBuild(service: Service, canary: boolean, sha: string): Promise<void> {
  const build = await readiness(service, canary);
  const want = canary ? "canary" : "stable";
  if (build.git_sha !== sha || (build.deployment !== want && build.deployment !== "")) {
    throw new StepFailed(
      `${want} reports ${build.deployment} ${build.git_sha.slice(0, 12)}, ` +
        `expected ${want} ${sha.slice(0, 12)}: the deploy did not take`,
    );
  }
}

async function _smoke(service: Service, canary: boolean): Promise<void> {
  await smokeTest(service, { canary, deviceToken: _env("HERALD_SMOKE_DEVICE_TOKEN")! });
}

/** Tags the release's commit with the tag recorded for it (and pushes it with HERALD_PUSH_TAGS=1). */
async function _tag(release: Release): Promise<void> {
  const tag = release.git_tag!;
  await git(ROOT, "tag", "--force", tag, release.git_sha);
  if (_env("HERALD_PUSH_TAGS") === "1") {
    await git(ROOT, "push", "--force", "origin", `refs/tags/${tag}`);
  }
  say(`tagged ${release.git_sha.slice(0, 12)} as ${tag}`);
}

/** Runs the gate over `windowS` seconds; true when the canary passes. */
export async function gate(
  service: Service,
  windowS: number,
  thresholds: Thresholds,
  // Often enough that a canary already over a limit is withdrawn early even in a short window.
  pollS = Math.min(10, Math.max(1, Math.ceil(windowS / 4))),
): Promise<boolean> {
  const prometheus = _env("PROMETHEUS_URL");
  say(
    `watching the canary for ${windowS} s through ${
      prometheus ? "Prometheus" : "the metrics endpoint"
    }: ` +
      `error margin ${thresholds.errorMargin}, p95 < ${thresholds.p95Ms} ms, no breaker opened`,
  );
  const started = Date.now();
  const before = prometheus ? undefined : snapshotFromExposition(await scrape(service));
  const window = async () =>
    prometheus
      ? snapshotFromPrometheus(prometheus, Math.max(1, Math.round((Date.now() - started) / 1000)))
      : increase(before!, snapshotFromExposition(await scrape(service)));
  while (Date.now() - started < windowS * 1000) {
    await new Promise((r) =>
      setTimeout(r, Math.min(pollS * 1000, windowS * 1000 - (Date.now() - started)))
    );
    if (Date.now() - started >= windowS * 1000) break;
    const so_far = await window();
    if (failsEarly(so_far, thresholds)) {
      for (const line of judge(so_far, thresholds).lines) say(line);
      say("the canary failed before the window ended");
      return false;
    }
  }
  const verdict = judge(await window(), thresholds);
  for (const line of verdict.lines) say(line);
  return verdict.ok;
}

async function deploy(
  environment: Environment,
  canary: number | undefined,
  windowS: number,
  hold: boolean,
) {
  const target = resolveTarget(environment);
  const thresholds = _thresholds();
  const sha = await git(ROOT, "rev-parse", "HEAD");
  if (environment === "staging" && canary !== undefined) {
    throw new Refused("staging has no canary: deploy --env staging without --canary");
  }
  await preflight({ backup: environment === "production", smoke: true });
  step(`deploying ${sha.slice(0, 12)} to ${environment} (${target.kind})`);
  if (target.kind === "hosted") await link(target);
  if (environment === "production") {
    const releases = await listReleases(target.query);
    const inFlight = releases.find((r) => r.state === "canary");
    if (inFlight) {
      throw new StepFailed(
        `release r${inFlight.id} (${inFlight.git_sha.slice(0, 12)}) is still a canary: ` +
          "promote-canary or rollback first",
      );
    }
    await backup(target, releases);
  }
  const asCanary = canary !== undefined;
  // Migrations and functions both come from the commit, never the working tree.
  const checkout = await _checkout(sha, asCanary ? "canary" : "stable");
  const latestMigration = (await migrationsOf(checkout.dir)).at(-1)!;
  try {
    step("applying migrations (expand only: the running release keeps working)");
    await pushMigrations(target, checkout.dir);
  } catch (error) {
    await checkout.remove();
    throw error;
  }
  try {
    step(`deploying the functions as ${asCanary ? "the canary" : "stable"}`);
    await deployFunctions(target, checkout.dir, asCanary);
  } catch (error) {
    if (asCanary) {
      // A half-deployed canary gets no traffic and leaves nothing behind.
      say(masked((error as Error).message));
      await _withdrawCanary(target);
      throw new StepFailed("the canary's deploy failed and what it left was withdrawn");
    }
    throw new StepFailed(
      `${(error as Error).message}. Run the deploy again (every function is uploaded again) ` +
        "or roll back",
    );
  } finally {
    await checkout.remove();
  }
  step(`smoke test of ${asCanary ? "the canary" : environment}`);
  try {
    await _expectBuild(target.service, asCanary, sha);
    await _smoke(target.service, asCanary);
  } catch (error) {
    if (asCanary) {
      say(`smoke test failed: ${(error as Error).message}`);
      await _withdrawCanary(target);
      throw new StepFailed("the canary failed its smoke test and was rolled back");
    }
    throw new StepFailed(
      `${environment} failed its smoke test: ${(error as Error).message}` +
        (environment === "staging" ? " (production is not touched)" : ""),
    );
  }
  step("recording the release");
  const release = await recordRelease(target.query, {
    git_sha: sha,
    git_tag: null,
    state: asCanary ? "canary" : "live",
    canary_percent: canary ?? null,
    functions: await listFunctions(target),
    latest_migration: latestMigration,
  }, `herald/${target.environment}/r`);
  await _tag(release);
  say(`release r${release.id}: ${release.state}`);
  if (!asCanary) return;

  step(`giving the canary ${canary} % of traffic`);
  await setCanaryShare(target, canary);
  step("observation window");
  // A gate that cannot judge (metrics or Prometheus unreachable) fails closed.
  const passed = await gate(target.service, windowS, thresholds).catch((error: Error) => {
    say(`the gate could not judge the canary: ${masked(error.message)}`);
    return false;
  });
  if (!passed) {
    step("the canary did not pass the gate: rolling back");
    await _withdrawCanary(target, release);
    throw new StepFailed(`release r${release.id} was rolled back by the health gate`);
  }
  if (hold) {
    say(
      `release r${release.id} passed and stays a canary at ${canary} %: promote-canary or rollback`,
    );
    return;
  }
  await promote(target, release);
}

/** Takes the canary out of service: no traffic, canary slugs gone, its release rolled back. */
async function _withdrawCanary(target: Target, release?: Release): Promise<void> {
  step("withdrawing the canary");
  await setCanaryShare(target, 0);
  await removeCanaryFunctions(target);
  const inFlight = release ?? (await listReleases(target.query)).find((r) => r.state === "canary");
  if (inFlight) {
    await setReleaseState(target.query, inFlight.id, "rolled_back");
    say(`release r${inFlight.id}: rolled_back`);
  }
}

/** Promotes `canary` (the deploy's own, just gated) or else the canary release in flight. */
async function promote(target: Target, canary?: Release): Promise<void> {
  const release = canary ?? (await listReleases(target.query)).find((r) => r.state === "canary");
  if (!release) throw new StepFailed("no canary is in flight: nothing to promote");
  step(`promoting release r${release.id} (${release.git_sha.slice(0, 12)})`);
  if (target.kind === "self-hosted") await setCanaryShare(target, 100);
  const checkout = await _checkout(release.git_sha, "stable");
  try {
    await deployFunctions(target, checkout.dir, false);
  } finally {
    await checkout.remove();
  }
  await _expectBuild(target.service, false, release.git_sha);
  await setCanaryShare(target, 0);
  await removeCanaryFunctions(target);
  await setReleaseState(target.query, release.id, "live", {
    functions: await listFunctions(target),
    canary_percent: 0,
  });
  say(`release r${release.id}: live`);
}

async function rollback(target: Target, to: string | undefined): Promise<void> {
  const releases = await listReleases(target.query);
  const canary = releases.find((r) => r.state === "canary");
  if (canary && to === undefined) {
    await _withdrawCanary(target, canary);
    return;
  }
  const live = releases.find((r) => r.state === "live");
  const wanted = to === undefined
    ? releases.find((r) => r.state === "superseded")
    : releases.find((r) => `r${r.id}` === to || String(r.id) === to || r.git_tag === to);
  if (!wanted) {
    throw new StepFailed(
      to === undefined ? "no earlier release to roll back to" : `no release ${to} (see status)`,
    );
  }
  const applied = releases.map((r) => r.latest_migration).sort().at(-1)!;
  const breaking = (await breakingSince(ROOT, wanted.latest_migration)).filter((m) => m <= applied);
  if (breaking.length) {
    throw new StepFailed(
      `refusing to roll back to r${wanted.id}: it predates ${breaking.join(", ")}, ` +
        "marked herald:breaking (its code cannot run on this schema); deploy a fix forward",
    );
  }
  step(`rolling back to release r${wanted.id} (${wanted.git_sha.slice(0, 12)}, ${wanted.git_tag})`);
  // Everything to stable, whatever the share was.
  if (canary) await _withdrawCanary(target, canary);
  else await setCanaryShare(target, 0);
  // The release's tag, fetched when this clone lacks it; its sha when it has no tag.
  let source = wanted.git_sha;
  if (wanted.git_tag) {
    const local = () => git(ROOT, "rev-parse", "--verify", "--quiet", `${wanted.git_tag}^{commit}`);
    const tagged = await local().catch(async () => {
      await git(ROOT, "fetch", "origin", `refs/tags/${wanted.git_tag}:refs/tags/${wanted.git_tag}`);
      return local();
    });
    if (tagged !== wanted.git_sha) {
      throw new StepFailed(
        `tag ${wanted.git_tag} points at ${tagged}, not r${wanted.id}'s ${wanted.git_sha}`,
      );
    }
    source = wanted.git_tag;
  }
  const checkout = await _checkout(source, "stable");
  try {
    await deployFunctions(target, checkout.dir, false);
  } finally {
    await checkout.remove();
  }
  await _expectBuild(target.service, false, wanted.git_sha);
  if (live) await setReleaseState(target.query, live.id, "rolled_back");
  const redeployed = await recordRelease(target.query, {
    git_sha: wanted.git_sha,
    git_tag: wanted.git_tag,
    state: "live",
    canary_percent: null,
    functions: await listFunctions(target),
    latest_migration: wanted.latest_migration,
  });
  say(`release r${redeployed.id}: live again at ${wanted.git_tag ?? wanted.git_sha.slice(0, 12)}`);
}

function _backupDir(): string {
  const dir = _env("HERALD_BACKUP_DIR") ?? `${ROOT}/.deploy/backups`;
  return dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
}

/**
 * Saves a schema and data dump and the live functions under the backup directory;
 * `releases`: the releases as this run just listed them (a deploy's), else listed here.
 */
async function backup(target: Target, releases?: Release[]): Promise<string> {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
  // Dumps hold the data: only the operator reads them.
  await Deno.mkdir(_backupDir(), { recursive: true, mode: 0o700 });
  let dir = `${_backupDir()}/${target.environment}-${stamp}`;
  // Never into an earlier backup, even one made in the same second.
  for (let n = 2;; n++) {
    try {
      await Deno.mkdir(dir, { mode: 0o700 });
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      dir = `${_backupDir()}/${target.environment}-${stamp}-${n}`;
    }
  }
  step(`backing up ${target.environment} to ${dir}`);
  // The CLI's own pg_dump script (--dry-run: its dump runs pg_dump in Docker), run by the local pg_dump.
  const flags = dbFlags(target);
  for (const [file, extra] of [["schema.sql", []], ["data.sql", ["--data-only"]]] as const) {
    const script = await run("supabase", ["db", "dump", ...flags, ...extra, "--dry-run"], {
      capture: true,
      cwd: ROOT,
    });
    await _runDumpScript(script, `${dir}/${file}`);
  }
  let functions: DeployedFunction[];
  let restore: string[] = [];
  if (target.kind === "hosted") {
    const live = await listHosted(target);
    functions = live.map((f) => ({
      slug: f.slug,
      version: f.version ?? null,
      ezbr_sha256: f.ezbr_sha256 ?? null,
    }));
    restore = await _downloadFunctions(target, dir, live);
  } else {
    functions = await listFunctions(target);
    await Deno.mkdir(`${dir}/supabase/functions`, { recursive: true });
    for (const [from, to] of [[target.stableDir, "stable"], [target.canaryDir, "canary"]]) {
      const copy = new Deno.Command("cp", {
        args: ["-R", from, `${dir}/supabase/functions/${to}`],
      });
      await copy.output();
    }
  }
  const live = (releases ?? await listReleases(target.query).catch(() => []))
    .find((r) => r.state === "live");
  await Deno.writeTextFile(
    `${dir}/backup.json`,
    JSON.stringify(
      {
        environment: target.environment,
        project: target.kind === "hosted" ? target.ref : "self-hosted",
        created_at: new Date().toISOString(),
        live_release: live ? { id: live.id, git_sha: live.git_sha, git_tag: live.git_tag } : null,
        functions,
        restore,
      },
      null,
      2,
    ) + "\n",
    { mode: 0o600 },
  );
  say(`saved schema.sql, data.sql, ${functions.length} functions and backup.json`);
  return dir;
}

/**
 * Runs the CLI's pg_dump script with its output into `file` (mode 0600). The
 * script sets the connection as `export PGPASSWORD="<password>"` without
 * escaping, so bash would expand a `$` or run a `$(…)` inside a password:
 * those lines are taken out and their values given to bash's environment
 * verbatim.
 */
async function _runDumpScript(script: string, file: string): Promise<void> {
  if (!script.startsWith("#!/usr/bin/env bash")) {
    throw new StepFailed(`supabase db dump --dry-run printed no script: ${script.slice(0, 200)}`);
  }
  const connection: Record<string, string> = {};
  const body = script.split("\n").filter((line) => {
    const m = line.match(/^export (PG[A-Z]+)="(.*)"$/);
    // The CLI escapes only `"` as `\"` (supabase/cli internal/db/dump/dump.go, noExec).
    if (m) connection[m[1]] = m[2].replaceAll('\\"', '"');
    return !m;
  }).join("\n");
  secret(connection.PGPASSWORD);
  const out = await Deno.open(file, { write: true, create: true, truncate: true, mode: 0o600 });
  const child = new Deno.Command("bash", {
    env: connection,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(body));
  await writer.close();
  const [status, , stderr] = await Promise.all([
    child.status,
    child.stdout.pipeTo(out.writable),
    new Response(child.stderr).text(),
  ]);
  if (!status.success) {
    throw new StepFailed(
      `pg_dump for ${file.split("/").at(-1)} exited ${status.code}: ${
        masked(stderr.trim().split("\n").at(-1) ?? "")
      }`,
    );
  }
}

/**
 * Downloads every live function with the CLI into a folder it can be
 * redeployed from: the stable slugs into `dir`, canary slugs into
 * `dir/canary` (each release's `_shared` stays whole), each with a
 * config.toml that keeps its `verify_jwt`, entrypoint and import map. Without
 * a canary, one `functions download` fetches them all.
 *
 * @returns the commands that redeploy them
 */
async function _downloadFunctions(
  target: Target & { kind: "hosted" },
  dir: string,
  live: HostedFunction[],
): Promise<string[]> {
  const restore: string[] = [];
  for (const canary of [false, true]) {
    const group = live.filter((f) => f.slug.endsWith("-canary") === canary);
    if (!group.length) continue;
    const workdir = canary ? `${dir}/canary` : dir;
    await Deno.mkdir(`${workdir}/supabase/functions`, { recursive: true });
    const download = (slug?: string) =>
      run("supabase", [
        "--workdir",
        workdir,
        "functions",
        "download",
        ...(slug ? [slug] : []),
        "--project-ref",
        target.ref,
        "--use-api",
      ], { cwd: ROOT });
    if (group.length === live.length) await download();
    else for (const fn of group) await download(fn.slug);
    const hasImportMap = await Deno.stat(`${workdir}/supabase/functions/deno.json`)
      .then(() => true, () => false);
    const config = [
      "# Written by the deployment manager's backup: what `supabase functions deploy`",
      "# needs to redeploy these bundles as they were (verify_jwt, entrypoint, import map).",
      `project_id = ${JSON.stringify(target.ref)}`,
    ];
    for (const fn of group) {
      const entry = (fn.entrypoint_path ?? "index.ts").split("/").at(-1);
      config.push(
        "",
        `[functions.${fn.slug}]`,
        `verify_jwt = ${fn.verify_jwt ?? true}`,
        `entrypoint = "./functions/${fn.slug}/${entry}"`,
        ...(hasImportMap ? [`import_map = "./functions/deno.json"`] : []),
      );
    }
    await Deno.writeTextFile(`${workdir}/supabase/config.toml`, config.join("\n") + "\n");
    restore.push(
      `supabase --workdir ${workdir} functions deploy ${group.map((f) => f.slug).join(" ")} ` +
        `--project-ref ${target.ref} --use-api`,
    );
  }
  return restore;
}

async function listBackups(): Promise<void> {
  const root = _backupDir();
  const entries: string[] = [];
  try {
    for await (const e of Deno.readDir(root)) if (e.isDirectory) entries.push(e.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (!entries.length) {
    console.log(`no backups under ${root}`);
    return;
  }
  console.log(`backups under ${root}, newest first:`);
  for (const name of entries.sort().reverse()) {
    const manifest = await Deno.readTextFile(`${root}/${name}/backup.json`)
      .then((t) => JSON.parse(t), () => undefined);
    const size = async (f: string) =>
      (await Deno.stat(`${root}/${name}/${f}`).catch(() => undefined))?.size ?? 0;
    const release = manifest?.live_release;
    console.log(
      `${name}  ${manifest?.project ?? "?"}  ` +
        `release ${release ? `r${release.id} ${release.git_sha.slice(0, 12)}` : "none"}  ` +
        `functions ${
          manifest?.functions?.map((f: { slug: string }) => f.slug).join(",") ?? "?"
        }  ` +
        `schema ${await size("schema.sql")} B, data ${await size("data.sql")} B`,
    );
  }
}

async function status(target: Target): Promise<void> {
  step(`${target.environment} (${target.kind === "hosted" ? target.ref : "self-hosted"})`);
  if (target.kind === "hosted") await link(target);
  const releases = await listReleases(target.query);
  console.log("releases (newest first):");
  for (const r of releases.slice(0, 10)) {
    console.log(
      `  r${r.id}  ${r.state.padEnd(11)} ${r.git_sha.slice(0, 12)}  ${r.git_tag ?? "-"}  ` +
        `${r.created_at}  ${r.latest_migration}`,
    );
  }
  if (!releases.length) console.log("  none yet");
  console.log("functions:");
  for (const f of await listFunctions(target)) {
    console.log(`  ${f.slug.padEnd(18)} v${f.version ?? "-"}  ${f.ezbr_sha256 ?? ""}`);
  }
  console.log(`canary share: ${await canaryShare(target)}`);
}

async function healthCheck(
  args: { url?: string; canaryUrl?: string; window?: string; expectSha?: string },
) {
  if (!args.url) throw new Refused("health-check needs --url (the functions base URL)");
  _need(["SUPABASE_SERVICE_ROLE_KEY"], "health-check");
  secret(_env("SUPABASE_SERVICE_ROLE_KEY"));
  const service: Service = {
    url: args.url,
    canaryUrl: args.canaryUrl ?? _env("HERALD_CANARY_FUNCTIONS_URL"),
    key: _env("SUPABASE_SERVICE_ROLE_KEY")!,
  };
  const windowS = _seconds(args.window, 60, "--window");
  const thresholds = _thresholds();
  step("readiness");
  await readiness(service, false);
  const canary = await readiness(service, true);
  if (args.expectSha && canary.git_sha !== args.expectSha) {
    throw new StepFailed(`the canary runs ${canary.git_sha}, not ${args.expectSha}`);
  }
  step("health gate");
  const passed = await gate(service, windowS, thresholds).catch((error: Error) => {
    throw new StepFailed(`the gate could not judge the canary: ${error.message}`);
  });
  if (!passed) {
    throw new StepFailed("the canary is less healthy than stable");
  }
  say("the canary is as healthy as stable");
}

/** Runs one command line; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        env: { type: "string" },
        canary: { type: "string" },
        window: { type: "string" },
        to: { type: "string" },
        url: { type: "string" },
        "canary-url": { type: "string" },
        "expect-sha": { type: "string" },
        hold: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    console.error(`deployment-manager: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined || command === "help") {
    console.log(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  try {
    if (positionals.length > 1) throw new Refused(`unexpected argument '${positionals[1]}'`);
    const environment = (values.env ?? "production") as Environment;
    if (environment !== "staging" && environment !== "production") {
      throw new Refused(`--env must be staging or production, got '${values.env}'`);
    }
    switch (command) {
      case "deploy": {
        if (values.env === undefined) throw new Refused("deploy needs --env staging|production");
        let canary: number | undefined;
        if (values.canary !== undefined) {
          canary = Number(values.canary);
          if (!Number.isInteger(canary) || canary < 1 || canary > 100) {
            throw new Refused(`--canary must be a whole percent 1…100, got '${values.canary}'`);
          }
        }
        if (values.hold && canary === undefined) throw new Refused("--hold needs --canary");
        await deploy(
          environment,
          canary,
          _seconds(values.window, 300, "--window"),
          values.hold ?? false,
        );
        break;
      }
      case "promote-canary": {
        const target = resolveTarget(environment);
        await preflight();
        if (target.kind === "hosted") await link(target);
        await promote(target);
        break;
      }
      case "rollback": {
        const target = resolveTarget(environment);
        await preflight();
        if (target.kind === "hosted") await link(target);
        await rollback(target, values.to);
        break;
      }
      case "backup": {
        const target = resolveTarget(environment);
        await preflight({ backup: true });
        if (target.kind === "hosted") await link(target);
        await backup(target);
        break;
      }
      case "list-backups":
        await listBackups();
        break;
      case "health-check":
        await healthCheck({
          url: values.url,
          canaryUrl: values["canary-url"],
          window: values.window,
          expectSha: values["expect-sha"],
        });
        break;
      case "status":
        await status(resolveTarget(environment));
        break;
      default:
        throw new Refused(`unknown command '${command}' (see --help)`);
    }
    return 0;
  } catch (error) {
    if (error instanceof Refused) {
      console.error(`deployment-manager: ${error.message}`);
      return 2;
    }
    if (error instanceof StepFailed && NO_TLS.test(error.message)) {
      console.error(`deployment-manager: ${NO_TLS_HINT}`);
      return 2;
    }
    if (error instanceof StepFailed) {
      console.error(`deployment-manager: FAILED: ${masked(error.message)}`);
      return 1;
    }
    console.error(`deployment-manager: FAILED: ${masked((error as Error).stack ?? String(error))}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
