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

/** `[functions.<slug>]` keys, from the CLI's `function` struct. */
export const FUNCTION_KEYS = ["enabled", "verify_jwt", "import_map", "entrypoint", "static_files"];

/** The dotted keys and tables of the CLI's `init` template (`functions.*` added). */
export function knownKeys(template: string): Set<string> {
  const known = new Set<string>();
  let table = "";
  for (const raw of template.split("\n")) {
    const line = raw.replace(/^#\s?/, "").trim();
    const header = line.match(/^\[([a-z0-9_.]+)\]$/);
    if (header) {
      table = header[1];
      known.add(table);
      continue;
    }
    const key = line.match(/^([a-z0-9_]+)\s*=/);
    if (key) known.add(table ? `${table}.${key[1]}` : key[1]);
  }
  known.add("functions");
  for (const key of FUNCTION_KEYS) known.add(`functions.*.${key}`);
  return known;
}

/** The dotted keys of `config` not in `known` (a function's slug read as `*`). */
export function unknownKeys(config: Record<string, unknown>, known: Set<string>): string[] {
  const unknown: string[] = [];
  const walk = (value: Record<string, unknown>, path: string[]) => {
    for (const [key, child] of Object.entries(value)) {
      const here = [...path, key];
      const pattern = (here[0] === "functions" && here.length >= 2)
        ? ["functions", "*", ...here.slice(2)].join(".")
        : here.join(".");
      const isTable = typeof child === "object" && child !== null && !Array.isArray(child);
      if (pattern === "functions.*" && isTable) {
        walk(child as Record<string, unknown>, here);
        continue;
      }
      if (!known.has(pattern)) {
        unknown.push(here.join("."));
        continue;
      }
      if (isTable) walk(child as Record<string, unknown>, here);
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
