/**
 * Releases: what each deploy put into service, recorded in the deployed
 * environment's own database (`herald.releases`, through `supabase db query`)
 * so the record outlives CI runners — and the git side of them: the tag each
 * release is cut from, checked out to redeploy it, and the migrations between
 * two releases (rollback refuses to cross one marked `-- herald:breaking`).
 *
 * @module
 */
import { run, StepFailed } from "./shell.ts";

/** One row of `herald.releases`. */
export interface Release {
  id: number;
  git_sha: string;
  git_tag: string | null;
  state: "canary" | "live" | "superseded" | "rolled_back";
  canary_percent: number | null;
  functions: DeployedFunction[];
  latest_migration: string;
  created_at: string;
}

/** A function as `supabase functions list` reports it after a deploy. */
export interface DeployedFunction {
  slug: string;
  version: number | null;
  ezbr_sha256: string | null;
}

/** The marker of a contract migration: the release before it cannot run on its schema. */
export const BREAKING_MARKER = /^--\s*herald:breaking\b/m;

/** A SQL string literal (standard_conforming_strings, as on every Supabase). */
export function literal(value: string | null): string {
  return value === null ? "null" : `'${value.replaceAll("'", "''")}'`;
}

/** Runs SQL against the environment's database with `supabase db query`; rows as JSON. */
export type Query = (sql: string) => Promise<Record<string, unknown>[]>;

/**
 * What `supabase db query --output json` prints for a statement without a
 * result set: Postgres's command tag (`UPDATE 0`, `INSERT 0 1`, `CREATE TABLE`),
 * not JSON (supabase/cli `apps/cli-go/internal/db/query/query.go`).
 */
export const COMMAND_TAG = /^[A-Z]+(?: [A-Z]+)*(?: \d+){0,2}$/;

/** A {@linkcode Query} through the CLI: `--linked` (hosted) or `--db-url` (self-hosted). */
export function cliQuery(dbFlags: string[], workdir: string): Query {
  return async (sql) => {
    const out = await run(
      "supabase",
      ["db", "query", ...dbFlags, "--output", "json", "--agent", "no", sql],
      { capture: true, cwd: workdir },
    );
    // A statement without a result set prints its command tag (`UPDATE 1`), not JSON.
    if (COMMAND_TAG.test(out.trim())) return [];
    try {
      const rows = JSON.parse(out || "[]");
      return Array.isArray(rows) ? rows : rows.rows ?? [];
    } catch {
      throw new StepFailed(`supabase db query did not answer JSON: ${out.slice(0, 200)}`);
    }
  };
}

const COLUMNS = "id, git_sha, git_tag, state, canary_percent, functions, latest_migration, " +
  "to_char(created_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') as created_at";

function _release(row: Record<string, unknown>): Release {
  const functions = typeof row.functions === "string" ? JSON.parse(row.functions) : row.functions;
  return { ...row, id: Number(row.id), functions } as Release;
}

/** Every release, newest first; none on a database Herald's migrations have not reached yet. */
export async function listReleases(query: Query): Promise<Release[]> {
  try {
    const rows = await query(`select ${COLUMNS} from herald.releases order by id desc limit 100`);
    return rows.map(_release);
  } catch (error) {
    if (/relation "herald\.releases" does not exist/.test((error as Error).message)) return [];
    throw error;
  }
}

/**
 * Records a release (a live one supersedes the live one before it); returns
 * it with its id. With `tagPrefix`, its git tag is `<tagPrefix><id>`, set in
 * the same statement (the id comes from the identity's sequence first).
 */
export async function recordRelease(
  query: Query,
  release: Omit<Release, "id" | "created_at">,
  tagPrefix?: string,
): Promise<Release> {
  if (release.state === "live") await _supersedeLive(query);
  const tag = tagPrefix === undefined ? literal(release.git_tag) : `${literal(tagPrefix)} || n.id`;
  const [row] = await query(
    `with n as (select nextval(pg_get_serial_sequence('herald.releases', 'id')) as id)
     insert into herald.releases
       (id, git_sha, git_tag, state, canary_percent, functions, latest_migration)
     overriding system value
     select n.id, ${literal(release.git_sha)}, ${tag}, ${literal(release.state)},
            ${release.canary_percent ?? "null"}, ${
      literal(JSON.stringify(release.functions))
    }::jsonb,
            ${literal(release.latest_migration)}
     from n
     returning ${COLUMNS}`,
  );
  return _release(row);
}

/** Moves release `id` to `state` (and the live one to superseded when it goes live). */
export async function setReleaseState(
  query: Query,
  id: number,
  state: Release["state"],
  changes: { git_tag?: string; functions?: DeployedFunction[]; canary_percent?: number } = {},
): Promise<void> {
  if (state === "live") await _supersedeLive(query, id);
  const sets = [`state = ${literal(state)}`, "updated_at = now()"];
  if (changes.git_tag) sets.push(`git_tag = ${literal(changes.git_tag)}`);
  if (changes.functions) {
    sets.push(`functions = ${literal(JSON.stringify(changes.functions))}::jsonb`);
  }
  if (changes.canary_percent !== undefined) {
    sets.push(`canary_percent = ${changes.canary_percent}`);
  }
  await query(`update herald.releases set ${sets.join(", ")} where id = ${id}`);
}

/** Before a release goes live, its predecessor steps down (its own statement: at most one is live). */
async function _supersedeLive(query: Query, except?: number): Promise<void> {
  await query(`update herald.releases set state = 'superseded', updated_at = now()
               where state = 'live'${except === undefined ? "" : ` and id <> ${except}`}`);
}

/** `git …` in `cwd`, its trimmed output. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args, cwd, stdin: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new StepFailed(
      `git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** What the CLI applies from supabase/migrations (supabase/cli `pkg/migration`: `^([0-9]+)_(.*)\.sql$`). */
const CLI_MIGRATION = /^[0-9]+_.*\.sql$/;
/** Herald's own naming, which ordering and the breaking guard rely on. */
const HERALD_MIGRATION = /^[0-9]{14}_[a-z0-9_]+\.sql$/;

/** Files the CLI would apply that Herald's naming (and so rollback's guard) would not see. */
export async function misnamedMigrations(checkout: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${checkout}/supabase/migrations`)) {
    if (entry.isFile && CLI_MIGRATION.test(entry.name) && !HERALD_MIGRATION.test(entry.name)) {
      names.push(entry.name);
    }
  }
  return names.sort();
}

/** The migration files of a checkout, oldest first. */
export async function migrationsOf(checkout: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${checkout}/supabase/migrations`)) {
    if (entry.isFile && HERALD_MIGRATION.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/**
 * The migrations of `checkout` after `since` marked `-- herald:breaking`: a
 * release cut before them cannot run on the schema they leave.
 */
export async function breakingSince(checkout: string, since: string): Promise<string[]> {
  const later = (await migrationsOf(checkout)).filter((name) => name > since);
  const breaking: string[] = [];
  for (const name of later) {
    const sql = await Deno.readTextFile(`${checkout}/supabase/migrations/${name}`);
    if (BREAKING_MARKER.test(sql)) breaking.push(name);
  }
  return breaking;
}
