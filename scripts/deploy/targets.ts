/**
 * Where a release goes, and how traffic reaches its canary:
 *
 * - **hosted** Supabase (a project ref): functions are uploaded with
 *   `supabase functions deploy --use-api`; the canary is every function again
 *   under a `-canary` slug (`[functions.<slug>-canary]` in config.toml), and
 *   its share of dispatch rounds is `herald.dispatch_canary.percent`, which
 *   pg_cron's schedule reads each round. Hosted has no traffic splitting:
 *   API callers reach the canary only by its slug.
 * - **self-hosted** behind Herald's Kong (`KONG_ADMIN_URL`): two edge
 *   runtimes serve the function folders `HERALD_STABLE_FUNCTIONS_DIR` and
 *   `HERALD_CANARY_FUNCTIONS_DIR`; a deploy writes a folder, and Kong's
 *   upstream weights (kong.yml re-rendered, `POST /config`) split traffic.
 *
 * @module
 */
import { renderKongConfig } from "../kong/render.ts";
import type { DeployedFunction, Query } from "./releases.ts";
import { cliQuery } from "./releases.ts";
import { run, say, StepFailed } from "./shell.ts";
import type { Service } from "./probe.ts";

/** Which environment. */
export type Environment = "staging" | "production";

/** A deploy target: an environment of one kind, with everything needed to act on it. */
export type Target =
  & {
    environment: Environment;
    service: Service;
    /** The repository checkout the manager runs from. */
    root: string;
    query: Query;
  }
  & (
    | {
      kind: "hosted";
      ref: string;
      /**
       * SUPABASE_DB_URL when given: the database commands use it (`--db-url`)
       * instead of the linked project's (`--linked`), e.g. the session pooler's
       * URL where the runner has no IPv6 for the direct host.
       */
      dbUrl?: string;
    }
    | {
      kind: "self-hosted";
      dbUrl: string;
      kongAdminUrl: string;
      stableDir: string;
      canaryDir: string;
    }
  );

/** The function folders of a checkout (not `_shared`). */
export async function functionNames(checkout: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${checkout}/supabase/functions`)) {
    if (entry.isDirectory && !entry.name.startsWith("_")) names.push(entry.name);
  }
  return names.sort();
}

/** The CLI's database flags for a target. */
export function dbFlags(target: Pick<Target, "kind" | "dbUrl">): string[] {
  return target.dbUrl ? ["--db-url", target.dbUrl] : ["--linked"];
}

/** A {@linkcode Query} on the target's database. */
export function targetQuery(target: Omit<Target, "query">): Query {
  return cliQuery(dbFlags(target as Target), target.root);
}

/** Links the checkout to a hosted project (the CLI's `--linked` commands need it). */
export async function link(target: Target): Promise<void> {
  if (target.kind !== "hosted") return;
  await run("supabase", ["link", "--project-ref", target.ref], { cwd: target.root });
}

/**
 * Applies the checkout's new migrations (forward only). `--include-all`: a
 * migration merged from a branch may sort before the newest one applied, and
 * the CLI refuses such a migration without it.
 */
export async function pushMigrations(target: Target, checkout: string): Promise<void> {
  await run(
    "supabase",
    ["--workdir", checkout, "db", "push", ...dbFlags(target), "--include-all", "--yes"],
    { cwd: target.root },
  );
}

/**
 * Deploys the functions of `checkout` as stable or canary: on hosted, every
 * function under its slug or its `-canary` slug; self-hosted, into the
 * stable or canary runtime's folder.
 */
export async function deployFunctions(
  target: Target,
  checkout: string,
  canary: boolean,
): Promise<void> {
  const names = await functionNames(checkout);
  if (target.kind === "hosted") {
    const slugs = names.map((n) => (canary ? `${n}-canary` : n));
    // What was live before, for the failure's message: this run's last listing when it has
    // changed nothing since (a backup's), else a listing of its own.
    const before = _lastListing?.ref === target.ref
      ? _lastListing.functions
      : await listFunctions(target);
    _lastListing = undefined;
    try {
      await run("supabase", [
        "--workdir",
        checkout,
        "functions",
        "deploy",
        ...slugs,
        "--project-ref",
        target.ref,
        "--use-api",
      ], { cwd: target.root });
    } catch (error) {
      // CLI 2.117.0 uploads every slug with bundleOnly and then activates the
      // uploads that succeeded, even when one failed: say which ones went live.
      let after: DeployedFunction[];
      try {
        after = await listFunctions(target);
      } catch (listing) {
        throw new StepFailed(
          `${(error as Error).message}; the CLI may have activated some of ${slugs.join(", ")} ` +
            `(it activates the uploads that succeeded), and listing them failed: ${
              (listing as Error).message
            }`,
        );
      }
      const moved = after.filter((f) =>
        slugs.includes(f.slug) &&
        f.version !== before.find((b) => b.slug === f.slug)?.version
      ).map((f) => f.slug);
      throw new StepFailed(
        `${(error as Error).message}; ` +
          (moved.length
            ? `the CLI activated ${moved.join(", ")} anyway (the uploads that succeeded), ` +
              `the others serve what they did before`
            : "no function changed"),
      );
    }
    return;
  }
  const dir = canary ? target.canaryDir : target.stableDir;
  await writeFunctionsFolder(checkout, dir, names);
  say(`wrote ${names.join(", ")} and _shared into ${dir}`);
}

/**
 * Lays out `volumes/functions/` as self-hosted Supabase's edge runtime serves
 * it: `_shared` and each function, with the functions' import map (deno.json) beside
 * each (the runtime reads its import map there). Replaced whole, not merged.
 */
export async function writeFunctionsFolder(
  checkout: string,
  dir: string,
  names: string[],
): Promise<void> {
  const staging = `${dir.replace(/\/+$/, "")}.next`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { recursive: true });
  for (const name of ["_shared", ...names]) {
    await _copyDir(`${checkout}/supabase/functions/${name}`, `${staging}/${name}`);
    if (name !== "_shared") {
      await Deno.copyFile(
        `${checkout}/supabase/functions/deno.json`,
        `${staging}/${name}/deno.json`,
      );
    }
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.rename(staging, dir);
}

async function _copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await _copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else if (entry.isFile) await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** Removes the canary slugs (hosted); a self-hosted canary folder stays for the next deploy. */
export async function removeCanaryFunctions(target: Target): Promise<void> {
  if (target.kind !== "hosted") return;
  const live = await listFunctions(target);
  _lastListing = undefined;
  for (const fn of live.filter((f) => f.slug.endsWith("-canary"))) {
    await run("supabase", ["functions", "delete", fn.slug, "--project-ref", target.ref], {
      cwd: target.root,
    });
  }
}

/** A hosted function as `supabase functions list --output json` prints it (the fields Herald reads). */
export interface HostedFunction {
  slug: string;
  version?: number;
  ezbr_sha256?: string;
  verify_jwt?: boolean;
  entrypoint_path?: string;
}

/**
 * The hosted functions as this run last listed them, until it deploys or deletes one:
 * a deploy right after a backup's listing needs no listing of its own for its "before".
 * Only that diagnostic reads it; what a release records is always listed afresh.
 */
let _lastListing: { ref: string; functions: DeployedFunction[] } | undefined;

/** `supabase functions list --output json` of a hosted project, by slug. */
export async function listHosted(target: Target & { kind: "hosted" }): Promise<HostedFunction[]> {
  const out = await run(
    "supabase",
    ["functions", "list", "--project-ref", target.ref, "--output", "json"],
    { capture: true, cwd: target.root },
  );
  let list: HostedFunction[];
  try {
    list = JSON.parse(out);
  } catch {
    throw new StepFailed(`supabase functions list did not answer JSON: ${out.slice(0, 200)}`);
  }
  list.sort((a, b) => a.slug.localeCompare(b.slug));
  _lastListing = {
    ref: target.ref,
    functions: list.map((f) => ({
      slug: f.slug,
      version: f.version ?? null,
      ezbr_sha256: f.ezbr_sha256 ?? null,
    })),
  };
  return list;
}

/** The live functions: `supabase functions list` (hosted) or the folders' digests (self-hosted). */
export async function listFunctions(target: Target): Promise<DeployedFunction[]> {
  if (target.kind === "hosted") {
    return (await listHosted(target)).map((f) => ({
      slug: f.slug,
      version: f.version ?? null,
      ezbr_sha256: f.ezbr_sha256 ?? null,
    }));
  }
  const out: DeployedFunction[] = [];
  for (const [dir, suffix] of [[target.stableDir, ""], [target.canaryDir, "-canary"]] as const) {
    for await (const entry of _readDirOrEmpty(dir)) {
      if (!entry.isDirectory || entry.name.startsWith("_")) continue;
      out.push({
        slug: entry.name + suffix,
        version: null,
        ezbr_sha256: await _digest(`${dir}/${entry.name}`, `${dir}/_shared`),
      });
    }
  }
  return out.sort((a, b) => a.slug.localeCompare(b.slug));
}

async function* _readDirOrEmpty(dir: string) {
  try {
    yield* Deno.readDir(dir);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** SHA-256 over a function folder and `_shared`, file by file in name order. */
async function _digest(...dirs: string[]): Promise<string> {
  const parts: Uint8Array[] = [];
  const walk = async (dir: string, prefix: string) => {
    const entries = [];
    for await (const e of _readDirOrEmpty(dir)) entries.push(e);
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory) await walk(`${dir}/${e.name}`, `${prefix}${e.name}/`);
      else if (e.isFile) {
        parts.push(new TextEncoder().encode(`${prefix}${e.name}\0`));
        parts.push(await Deno.readFile(`${dir}/${e.name}`));
      }
    }
  };
  for (const dir of dirs) await walk(dir, `${dir.split("/").at(-1)}/`);
  const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) whole.set(p, (at += p.length) - p.length);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", whole));
  return [...hash].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Gives the canary `percent` of traffic: on hosted, of pg_cron's dispatch
 * rounds; self-hosted, Kong's upstream weights (kong.yml rendered from this
 * checkout's environment, loaded with `POST /config`).
 */
export async function setCanaryShare(target: Target, percent: number): Promise<void> {
  if (target.kind === "hosted") {
    await target.query(
      `update herald.dispatch_canary set percent = ${percent}, updated_at = now() where id`,
    );
    say(`dispatch rounds to dispatch-canary: ${percent} %`);
    return;
  }
  const template = await Deno.readTextFile(`${target.root}/kong/kong.yml`);
  let text: string;
  try {
    text = renderKongConfig(template, Deno.env.toObject(), { canaryWeight: percent }).text;
  } catch (error) {
    throw new StepFailed((error as Error).message);
  }
  const url = new URL("/config", target.kongAdminUrl);
  say(`POST ${url.origin}/config (canary weight ${percent}, stable ${100 - percent})`);
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ config: text }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    throw new StepFailed(`Kong's admin API did not answer: ${(error as Error).message}`);
  }
  const answer = await response.text();
  if (response.status !== 201 && response.status !== 200) {
    throw new StepFailed(`Kong refused the config: ${response.status} ${answer.slice(0, 300)}`);
  }
}

/** The canary's share now: `herald.dispatch_canary` (hosted) or Kong's targets (self-hosted). */
export async function canaryShare(target: Target): Promise<string> {
  if (target.kind === "hosted") {
    const [row] = await target.query("select percent from herald.dispatch_canary where id");
    return `${row?.percent ?? 0} % of dispatch rounds`;
  }
  const url = new URL("/upstreams/herald-functions/targets", target.kongAdminUrl);
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) }).catch(() => null);
  if (!response?.ok) return "unknown (Kong's admin API did not list the targets)";
  const { data } = await response.json() as { data: { target: string; weight: number }[] };
  return data.map((t) => `${t.target} weight ${t.weight}`).join(", ");
}
