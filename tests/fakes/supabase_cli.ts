/**
 * A stand-in for the `supabase` CLI (2.84), run as `tests/fakes/bin/supabase`
 * put first on PATH. It takes the commands the deployment manager uses, with
 * the real CLI's flags and output shapes, and keeps a project's state in a
 * directory instead of Supabase's Management API:
 *
 * - every call is appended to `calls.jsonl`: `{ argv, workdir_sha, stamped }`
 *   (the git sha of `--workdir` and the deployment stamped into its build, for
 *   `functions deploy`);
 * - `functions deploy` bundles each slug (its `[functions.<slug>] entrypoint`
 *   from config.toml, else `functions/<slug>/index.ts`), bumps its `version`
 *   and sets `ezbr_sha256`; `functions list --output json` answers the
 *   Management API's FunctionResponse array; `functions download` writes the
 *   bundle back under `<workdir>/supabase/functions/<slug>/`;
 *   `functions delete` removes it;
 * - `db query` runs its SQL for real on `FAKE_SUPABASE_DB_URL` (the test
 *   stack's Postgres) and prints the rows as `--output json` does;
 * - `db dump --file F` writes a dump header and the herald tables' names;
 *   `db push` and `link` are recorded.
 *
 * `FAKE_SUPABASE_FAIL=<words>` makes any call whose argv contains those words
 * (space-joined) fail with exit 1, as a CLI error does. Management commands
 * fail without `SUPABASE_ACCESS_TOKEN`, as the real CLI does when not logged in.
 *
 * @module
 */
import postgres from "postgres";
import { parse } from "smol-toml";

const state = Deno.env.get("FAKE_SUPABASE_STATE");
if (!state) {
  console.error("fake supabase: FAKE_SUPABASE_STATE is not set");
  Deno.exit(70);
}
const argv = Deno.args;

/** Splits argv into words and `--flag value` / `--flag` options (global flags anywhere). */
function parseArgv(args: string[]) {
  const BOOLEAN = new Set(["--linked", "--use-api", "--data-only", "--yes", "--local", "--debug"]);
  const words: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("-")) words.push(a);
    else if (a.includes("=")) flags.set(a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1));
    else if (BOOLEAN.has(a)) flags.set(a, true);
    else flags.set(a === "-o" ? "--output" : a === "-f" ? "--file" : a, args[++i] ?? "");
  }
  return { words, flags };
}

const { words, flags } = parseArgv(argv);
const flag = (name: string) => {
  const v = flags.get(name);
  return typeof v === "string" ? v : undefined;
};
const fail = (message: string): never => {
  console.error(message);
  Deno.exit(1);
};

const workdir = flag("--workdir") ?? Deno.cwd();
let workdirSha: string | null = null;
let stamped: string | null = null;
if (words[0] === "functions" && words[1] === "deploy") {
  const out = new Deno.Command("git", { args: ["rev-parse", "HEAD"], cwd: workdir, stderr: "null" })
    .outputSync();
  workdirSha = out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  const build = await Deno.readTextFile(`${workdir}/supabase/functions/_shared/build.ts`)
    .catch(() => "");
  stamped = build.match(/deployment: "([^"]*)"/)?.[1] ?? null;
}
await Deno.writeTextFile(
  `${state}/calls.jsonl`,
  JSON.stringify({ argv, workdir_sha: workdirSha, stamped }) + "\n",
  { append: true },
);

const failOn = Deno.env.get("FAKE_SUPABASE_FAIL");
if (failOn && argv.join(" ").includes(failOn)) {
  fail(`unexpected error (FAKE_SUPABASE_FAIL: ${failOn})`);
}

const management = ["functions", "link", "db"].includes(words[0]) &&
  !(words[0] === "db" && flags.has("--db-url"));
if (management && !Deno.env.get("SUPABASE_ACCESS_TOKEN")) {
  fail(
    "Access token not provided. Supply an access token by running supabase login " +
      "or setting the SUPABASE_ACCESS_TOKEN environment variable.",
  );
}

interface Fn {
  id: string;
  slug: string;
  name: string;
  status: "ACTIVE";
  version: number;
  created_at: number;
  updated_at: number;
  verify_jwt: boolean;
  import_map: boolean;
  entrypoint_path: string;
  import_map_path: string;
  ezbr_sha256: string;
}

const ref = () =>
  flag("--project-ref") ?? fail("Cannot find project ref. Have you run supabase link?");
const functionsFile = () => `${state}/functions-${ref()}.json`;
const readFunctions = async (): Promise<Fn[]> =>
  JSON.parse(await Deno.readTextFile(functionsFile()).catch(() => "[]"));
const writeFunctions = (fns: Fn[]) =>
  Deno.writeTextFile(functionsFile(), JSON.stringify(fns, null, 2));

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...hash].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function copyDir(from: string, to: string) {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

switch (`${words[0]} ${words[1] ?? ""}`.trim()) {
  case "link":
    ref();
    console.log(`Finished supabase link.`);
    break;
  case "db push":
    if (!flags.has("--linked") && !flag("--db-url")) fail("supabase db push: not linked");
    console.log("Remote database is up to date.");
    break;
  case "db dump": {
    const file = flag("--file") ?? fail("the fake wants --file");
    const sql = postgres(Deno.env.get("FAKE_SUPABASE_DB_URL")!, { max: 1, onnotice: () => {} });
    const tables =
      await sql`select tablename from pg_tables where schemaname = 'herald' order by 1`;
    await sql.end();
    await Deno.writeTextFile(
      file,
      `-- supabase db dump (fake) ${flags.has("--data-only") ? "data" : "schema"}\n` +
        tables.map((t) => `-- herald.${t.tablename}\n`).join(""),
    );
    console.error(`Dumped schema to ${file}.`);
    break;
  }
  case "db query": {
    if (!flags.has("--linked") && !flag("--db-url")) fail("the fake wants --linked or --db-url");
    const text = words[2] ?? fail("supabase db query: no SQL given");
    const sql = postgres(Deno.env.get("FAKE_SUPABASE_DB_URL")!, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql.unsafe(text);
      console.log(JSON.stringify([...rows], null, 2));
    } catch (error) {
      await sql.end();
      fail(`ERROR: ${(error as Error).message}`);
    }
    await sql.end();
    break;
  }
  case "functions list":
    if (flag("--output") !== "json") fail("the fake answers --output json only");
    console.log(JSON.stringify(await readFunctions(), null, 2));
    break;
  case "functions deploy": {
    if (!flags.has("--use-api")) fail("the fake deploys with --use-api only (no Docker here)");
    const config = parse(await Deno.readTextFile(`${workdir}/supabase/config.toml`)) as {
      functions?: Record<string, { entrypoint?: string; verify_jwt?: boolean }>;
    };
    const fns = await readFunctions();
    for (const slug of words.slice(2)) {
      const entry = config.functions?.[slug]?.entrypoint;
      const index = entry
        ? `${workdir}/supabase/${entry.replace(/^\.\//, "")}`
        : `${workdir}/supabase/functions/${slug}/index.ts`;
      const source = await Deno.readFile(index).catch(() =>
        fail(`Failed to bundle ${slug}: ${index} not found`)
      );
      const build = await Deno.readFile(`${workdir}/supabase/functions/_shared/build.ts`);
      const bundle = `${state}/bundles/${ref()}/${slug}`;
      await Deno.remove(bundle, { recursive: true }).catch(() => {});
      await copyDir(index.replace(/\/[^/]+$/, ""), bundle);
      await Deno.mkdir(`${bundle}/_shared`, { recursive: true });
      await Deno.writeFile(`${bundle}/_shared/build.ts`, build);
      const digest = await sha256(new Uint8Array([...source, ...build]));
      const now = Date.now();
      const old = fns.find((f) => f.slug === slug);
      const fn: Fn = {
        id: old?.id ?? crypto.randomUUID(),
        slug,
        name: slug,
        status: "ACTIVE",
        version: (old?.version ?? 0) + 1,
        created_at: old?.created_at ?? now,
        updated_at: now,
        verify_jwt: config.functions?.[slug]?.verify_jwt ?? true,
        import_map: true,
        entrypoint_path: `file:///tmp/${slug}/index.ts`,
        import_map_path: "file:///tmp/deno.json",
        ezbr_sha256: digest,
      };
      if (old) Object.assign(old, fn);
      else fns.push(fn);
      console.log(`Deployed Functions on project ${ref()}: ${slug}`);
    }
    await writeFunctions(fns);
    break;
  }
  case "functions download": {
    const slug = words[2] ?? fail("the fake downloads one named function");
    const bundle = `${state}/bundles/${ref()}/${slug}`;
    await Deno.stat(bundle).catch(() =>
      fail(`Function ${slug} does not exist on the Supabase project.`)
    );
    await copyDir(bundle, `${workdir}/supabase/functions/${slug}`);
    console.error(`Downloaded Function ${slug} from project ${ref()}.`);
    break;
  }
  case "functions delete": {
    const slug = words[2] ?? fail("supabase functions delete <Function name>");
    const fns = await readFunctions();
    if (!fns.some((f) => f.slug === slug)) {
      fail(`Function ${slug} does not exist on the Supabase project.`);
    }
    await writeFunctions(fns.filter((f) => f.slug !== slug));
    await Deno.remove(`${state}/bundles/${ref()}/${slug}`, { recursive: true }).catch(() => {});
    console.log(`Deleted Function ${slug} from project ${ref()}.`);
    break;
  }
  default:
    fail(`the fake supabase CLI does not know '${argv.join(" ")}'`);
}
