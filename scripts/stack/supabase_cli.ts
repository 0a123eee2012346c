/**
 * The real Supabase CLI, as Herald's users run it: the pinned npm package
 * (`supabase` in package.json's devDependencies, installed by
 * scripts/deno.sh), never an imitation. The stack applies migrations with it
 * and `npm test` lints the database with it.
 *
 * @module
 */
import { ROOT } from "./config.ts";

/** The pinned CLI's launcher (a Node script that execs the platform binary). */
export const SUPABASE_CLI = `${ROOT}/node_modules/.bin/supabase`;

/**
 * What every run of the CLI by Herald's own tooling gets: no telemetry, no
 * update check (this machine and CI have no route to either).
 */
export const CLI_QUIET_ENV: Record<string, string> = {
  SUPABASE_TELEMETRY_DISABLED: "1",
  DO_NOT_TRACK: "1",
  SUPABASE_NO_UPDATE_NOTIFIER: "1",
};

/**
 * `url` as the CLI's `--db-url` needs it for a server without TLS: the CLI
 * refuses (`tls error (The server does not support SSL connections)`) unless
 * the URL says `sslmode=disable`. A URL that names an sslmode keeps it.
 */
export function withoutTls(url: string): string {
  const parsed = new URL(url);
  if (!parsed.searchParams.has("sslmode")) parsed.searchParams.set("sslmode", "disable");
  return parsed.toString();
}

/** The outcome of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `supabase args…` in `cwd` (default: the repository). Never throws on a non-zero exit. */
export async function supabaseCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const out = await new Deno.Command(SUPABASE_CLI, {
    args,
    cwd: options.cwd ?? ROOT,
    env: { ...CLI_QUIET_ENV, ...options.env },
    stdin: "null",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/**
 * Applies `<workdir>/supabase/migrations` with `supabase db push`, exactly as
 * a deploy does: each migration in its own transaction, recorded by the CLI
 * in `supabase_migrations.schema_migrations`; `--include-all` so a migration
 * older than the newest applied one (merged from a branch) is applied too.
 *
 * @returns the versions applied now
 * @throws {Error} with the CLI's own message when it refuses a migration
 */
export async function applyMigrations(dbUrl: string, workdir = ROOT): Promise<string[]> {
  const { code, stdout, stderr } = await supabaseCli([
    "db",
    "push",
    "--db-url",
    withoutTls(dbUrl),
    "--include-all",
    "--yes",
    "--workdir",
    workdir,
  ]);
  if (code !== 0) {
    throw new Error(`supabase db push failed (exit ${code}):\n${stderr.trim()}\n${stdout.trim()}`);
  }
  return [...`${stdout}\n${stderr}`.matchAll(/^Applying migration (\d{14})_\S+\.sql/gm)]
    .map((m) => m[1]);
}
