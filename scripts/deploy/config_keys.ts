/**
 * The keys of `supabase/config.toml` the Supabase CLI knows. The CLI ignores
 * unknown keys silently (a misspelt `verify_jwt` would deploy a function with
 * the platform's JWT check on), so the manager refuses them before a deploy.
 *
 * What the CLI knows is read from the CLI itself: `supabase init` writes its
 * full template, every key present or commented out (`# key = …`), into a
 * scratch folder (kept per CLI version in the user's cache). A function's table (`[functions.<slug>]`) is not in the
 * template; its keys are the CLI's `function` struct (supabase/cli
 * `apps/cli-go/pkg/config/config.go`: enabled, verify_jwt, import_map,
 * entrypoint, static_files).
 *
 * @module
 */
import { parse } from "smol-toml";
import { run } from "./shell.ts";

/** A function's name as the CLI accepts it (supabase/cli `internal/utils`: `FuncSlugPattern`). */
const FUNCTION_SLUG = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** `[functions.<slug>]` keys, from the CLI's `function` struct. */
export const FUNCTION_KEYS = ["enabled", "verify_jwt", "import_map", "entrypoint", "static_files"];

/**
 * Tables the CLI reads as maps keyed by the user's own names (supabase/cli
 * `apps/cli-go/pkg/config`: `function` configs, `auth.external` providers,
 * email templates and notifications, SMS test OTPs, `db.vault` and
 * `edge_runtime.secrets` secrets, storage buckets), and `auth.hook`, whose six
 * hooks share one shape and only two of which the template shows. Their
 * entries are checked against the keys the template shows for any one entry.
 */
const MAPS = new Set([
  "functions",
  "auth.external",
  "auth.hook",
  "auth.email.template",
  "auth.email.notification",
  "auth.sms.test_otp",
  "db.vault",
  "edge_runtime.secrets",
  "storage.buckets",
  "storage.analytics.buckets",
  "storage.vector.buckets",
]);

/** A dotted path with the user's own names (a map's entries) read as `*`; a remote is a whole config. */
function _normalize(path: string[]): string[] {
  if (path[0] === "remotes" && path.length >= 2) return _normalize(path.slice(2));
  const out: string[] = [];
  for (const segment of path) out.push(MAPS.has(out.join(".")) ? "*" : segment);
  return out;
}

/** The dotted keys and tables of the CLI's `init` template, normalised (`functions.*` added). */
export function knownKeys(template: string): Set<string> {
  const known = new Set<string>(["remotes", ...MAPS]);
  const add = (path: string[]) => {
    const normal = _normalize(path);
    // Every table on the way is known too (`auth.external` for `[auth.external.apple]`).
    for (let i = 1; i <= normal.length; i++) known.add(normal.slice(0, i).join("."));
  };
  let table: string[] = [];
  for (const raw of template.split("\n")) {
    const line = raw.replace(/^#\s?/, "").trim();
    const header = line.match(/^\[([A-Za-z0-9_.-]+)\]$/);
    if (header) {
      table = header[1].split(".");
      add(table);
      continue;
    }
    const key = line.match(/^([A-Za-z0-9_]+)\s*=/);
    if (key) add([...table, key[1]]);
  }
  for (const key of FUNCTION_KEYS) add(["functions", "slug", key]);
  return known;
}

/** The dotted keys of `config` not in `known` (the user's own names read as `*`). */
export function unknownKeys(config: Record<string, unknown>, known: Set<string>): string[] {
  const unknown: string[] = [];
  const walk = (value: Record<string, unknown>, path: string[]) => {
    for (const [key, child] of Object.entries(value)) {
      const here = [...path, key];
      const normal = _normalize(here);
      const badSlug = here.length === 2 && here[0] === "functions" && !FUNCTION_SLUG.test(key);
      // A remote's own table normalises to nothing: the config it holds is checked below it.
      if (badSlug || (normal.length > 0 && !known.has(normal.join(".")))) {
        unknown.push(here.join("."));
        continue;
      }
      if (typeof child === "object" && child !== null && !Array.isArray(child)) {
        walk(child as Record<string, unknown>, here);
      }
    }
  };
  walk(config, []);
  return unknown;
}

/** Unknown keys of the config.toml at `path`, against the CLI on PATH's own template. */
export async function unknownConfigKeys(path: string): Promise<string[]> {
  return unknownKeys(parse(await Deno.readTextFile(path)), knownKeys(await _template()));
}

/**
 * The CLI's `init` template. Kept per CLI version under the user's cache
 * (`$XDG_CACHE_HOME/herald`) when the CLI is an npm install, whose version
 * can be read without running it (each run of the CLI costs most of a
 * second); otherwise made afresh.
 */
async function _template(): Promise<string> {
  const version = await _npmCliVersion();
  const cache = `${Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME")}/.cache`}/herald`;
  const cached = version ? `${cache}/supabase-${version}-config.toml` : undefined;
  if (cached) {
    try {
      return await Deno.readTextFile(cached);
    } catch {
      // Not made yet for this version.
    }
  }
  const scratch = await Deno.makeTempDir({ prefix: "herald-cli-init-" });
  try {
    await run("supabase", ["init", "--workdir", scratch, "--yes"], { capture: true });
    const template = await Deno.readTextFile(`${scratch}/supabase/config.toml`);
    if (cached) {
      await Deno.mkdir(cache, { recursive: true });
      // Written whole, then renamed: a concurrent run never reads half a template.
      const partial = `${cached}.${crypto.randomUUID()}`;
      await Deno.writeTextFile(partial, template);
      await Deno.rename(partial, cached);
    }
    return template;
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

/** The version of the `supabase` npm package that PATH's `supabase` runs, if it is one. */
async function _npmCliVersion(): Promise<string | undefined> {
  const which = await new Deno.Command("sh", {
    args: ["-c", "command -v supabase"],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!which.success) return undefined;
  try {
    const real = await Deno.realPath(new TextDecoder().decode(which.stdout).trim());
    const pkg = real.match(/^(.*\/node_modules\/supabase)\/dist\/supabase\.js$/)?.[1];
    if (!pkg) return undefined;
    const { name, version } = JSON.parse(await Deno.readTextFile(`${pkg}/package.json`));
    return name === "supabase" && /^[\w.+-]+$/.test(version) ? version : undefined;
  } catch {
    return undefined;
  }
}
