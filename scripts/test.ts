/**
 * `npm test`: every check, against a fresh stack of its own.
 *
 * Static checks (fmt, lint, type check, the edge runtime's Deno API), the
 * Supabase CLI's `db lint` over the migrated schema, Deno
 * tests through the real gateway, Postgres and Redis, the tests that run
 * function code in-process again under the edge runtime's own Deno
 * (`EDGE_RUNTIME_DENO`, unchecked as the runtime loads it), and pgTAP tests;
 * then the one summary line CI reads:
 * `N passed, N failed`. Deno tests are counted from their JUnit report,
 * pgTAP assertions from their TAP output; a check that dies without a report
 * counts as one failure.
 *
 * `npm test -- tests/outbox_test.ts supabase/tests/rls_deliveries_test.sql` runs just
 * those files (no static checks) against the same fresh stack, for quick iteration.
 *
 * @module
 */
import { loadStackConfig, ROOT } from "./stack/config.ts";
import { ensure, ensureServices, testRequirements } from "./stack/packages.ts";
import { psql } from "./stack/postgres.ts";
import { startStack } from "./stack/stack.ts";
import { supabaseCli, withoutTls } from "./stack/supabase_cli.ts";

Deno.env.set("HERALD_STACK", "test");
const stack = await loadStackConfig();
const DENO = Deno.execPath();
const tally = { passed: 0, failed: 0 };
const XML_ENTITIES: Record<string, string> = { apos: "'", quot: '"', lt: "<", gt: ">", amp: "&" };
/** What failed, named again just before the summary: CI shows only the tail. */
const failures: string[] = [];
const only = Deno.args;

function count(name: string, passed: number, failed: number) {
  tally.passed += passed;
  tally.failed += failed;
  if (failed && !failures.some((f) => f.startsWith(`${name}:`))) failures.push(name);
  console.log(`── ${name}: ${passed} passed, ${failed} failed`);
}

async function run(command: string, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(command, {
    args,
    env,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let output = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    output += chunk;
    await Deno.stdout.write(new TextEncoder().encode(chunk));
  }
  return { success: (await child.status).success, output };
}

async function typeScriptFiles(): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${ROOT}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  for (const dir of ["scripts", "supabase", "tests"]) await walk(dir);
  return files.sort();
}

async function staticChecks() {
  for (
    const [name, args] of [
      ["deno fmt --check", ["fmt", "--check"]],
      ["deno lint", ["lint"]],
      ["deno check", ["check", ...(await typeScriptFiles())]],
    ] as const
  ) {
    const { success } = await run(DENO, [...args]);
    count(name, success ? 1 : 0, success ? 0 : 1);
  }
  await edgeRuntimeApiCheck();
}

async function denoTests(
  name = "deno test",
  deno = DENO,
  flags: string[] = [],
  files = only.length ? only.filter((f) => f.endsWith(".ts")) : ["tests/"],
  env: Record<string, string> = {},
) {
  const junit = `${stack.dataDir}/junit-${name.replaceAll(/\W+/g, "-")}.xml`;
  const { success } = await run(deno, [
    "test",
    "-A",
    "--no-prompt",
    ...flags,
    `--junit-path=${junit}`,
    ...files,
  ], { ...env, HERALD_STACK: "test", HERALD_DATA_DIR: stack.dataDir });
  let xml = "";
  try {
    xml = await Deno.readTextFile(junit);
  } catch {
    // No report: the run died before writing one; counted below.
  }
  const cases = xml.match(/<testcase\b[\s\S]*?(?:\/>|<\/testcase>)/g) ?? [];
  const failing = cases.filter((c) => /<failure\b|<error\b/.test(c));
  for (const c of failing) {
    const attr = (key: string) =>
      (c.match(new RegExp(`\\b${key}="([^"]*)"`))?.[1] ?? "?")
        .replace(/&(apos|quot|lt|gt|amp);/g, (_, e) => XML_ENTITIES[e]);
    failures.push(`${name}: ${attr("classname")} › ${attr("name")}`);
  }
  const failed = failing.length;
  const unexplained = !success && failed === 0 ? 1 : 0;
  count(name, cases.length - failed, failed + unexplained);
}

/**
 * The Deno the Supabase edge runtime embeds (its `Deno.version`): function
 * code must run there unchanged, so the tests that run it in-process run
 * again under it, unchecked (`--no-check`) and without the lockfile (v5 is
 * newer than it reads), as the runtime loads a deployed bundle.
 */
const EDGE_RUNTIME_DENO = "2.1.4";

/**
 * Test files the edge-runtime lane leaves out, each with the reason. They
 * still run in the main lane.
 */
const EDGE_LANE_EXCLUDED: Record<string, string> = {
  "tests/inbox_test.ts":
    "the inbox is a local development tool run by the project's Deno, never function code",
  "tests/deploy_test.ts":
    "the deployment manager is an operator's and CI's tool run by the project's Deno " +
    "(scripts/deployment-manager.sh), never function code; the functions it deploys are " +
    "tested in this lane by the other files",
  "tests/readme_deploy_test.ts":
    "it runs the README's deploy commands with the Supabase CLI against stand-ins; it reads " +
    "supabase/functions/ only as files the CLI uploads, never as code",
  "tests/fcm_parity_test.ts":
    "firebase-admin, the development-only peer it compares with (never part of a function), " +
    "does not load under Deno 2.1.4 (its logging reads an undefined process.env)",
};

async function edgeRuntimeTests() {
  const prefix = `${ROOT}/.data/deno-${EDGE_RUNTIME_DENO}`;
  const deno = `${prefix}/node_modules/.bin/deno`;
  if (!(await Deno.stat(deno).then(() => true, () => false))) {
    const install = await run("npm", [
      "install",
      "--no-audit",
      "--no-fund",
      "--no-save",
      "--loglevel=error",
      "--prefix",
      prefix,
      `deno@${EDGE_RUNTIME_DENO}`,
    ]);
    if (!install.success) return count(`deno ${EDGE_RUNTIME_DENO} test`, 0, 1);
  }
  const files = (await typeScriptFiles()).filter((f) =>
    f.startsWith("tests/") && f.endsWith("_test.ts") && (!only.length || only.includes(f)) &&
    !(f in EDGE_LANE_EXCLUDED)
  );
  const inProcess = [];
  for (const file of files) {
    if ((await Deno.readTextFile(`${ROOT}/${file}`)).includes("supabase/functions/")) {
      inProcess.push(file);
    }
  }
  if (inProcess.length === 0) return;
  await denoTests(
    `deno ${EDGE_RUNTIME_DENO} (edge runtime) test`,
    deno,
    [
      "--no-check",
      "--no-lock",
    ],
    inProcess,
    {
      // This Deno trusts only its bundled roots unless told; registries behind a
      // TLS-inspecting proxy need the system's.
      DENO_TLS_CA_STORE: "mozilla,system",
      HERALD_DENO_RUN_FLAGS: "--no-check --no-lock",
    },
  );
}

/**
 * The Deno APIs the edge runtime provides to functions; anything else
 * (`Deno.readFile`, `Deno.Command`, `Deno.listen`, …) fails when deployed.
 */
const EDGE_DENO_API = new Set(["env", "serve", "resolveDns", "errors"]);

/** Function code may use only {@linkcode EDGE_DENO_API}; each other `Deno.*` is one finding. */
async function edgeRuntimeApiCheck() {
  const findings: string[] = [];
  for (const file of (await typeScriptFiles()).filter((f) => f.startsWith("supabase/functions/"))) {
    const lines = (await Deno.readTextFile(`${ROOT}/${file}`)).split("\n");
    lines.forEach((line, i) => {
      if (/^\s*(\*|\/\/)/.test(line)) return; // comments and doc examples
      for (const match of line.matchAll(/\bDeno\s*\.\s*(\w+)/g)) {
        if (!EDGE_DENO_API.has(match[1])) findings.push(`${file}:${i + 1}: Deno.${match[1]}`);
      }
    });
  }
  for (const finding of findings) {
    console.error(
      `${finding} is not provided by the edge runtime (allowed: ${[...EDGE_DENO_API].join(", ")})`,
    );
  }
  count("edge runtime Deno API", findings.length ? 0 : 1, findings.length);
}

async function pgTapTests() {
  await psql(stack, ["-c", "create extension if not exists pgtap with schema extensions"]);
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}/supabase/tests`)) {
    const path = `supabase/tests/${entry.name}`;
    if (entry.name.endsWith(".sql") && (!only.length || only.includes(path))) files.push(path);
  }
  if (files.length === 0) return count("pgTAP", 0, 0);
  const { success, output } = await run("pg_prove", [
    "--verbose",
    "--host=127.0.0.1",
    `--port=${stack.ports.postgres}`,
    "--username=postgres",
    "--dbname=postgres",
    ...files.sort(),
  ], { PGPASSWORD: "postgres" });
  const passed = output.match(/^\s*ok \d+/gm)?.length ?? 0;
  const notOk = output.match(/^\s*not ok \d+.*$/gm) ?? [];
  for (const line of notOk) failures.push(`pgTAP: ${line.trim()}`);
  const failed = notOk.length;
  count("pgTAP", passed, failed + (!success && failed === 0 ? 1 : 0));
}

/**
 * `supabase db lint` (the pinned CLI; plpgsql_check) over Herald's schemas in
 * the migrated test stack: any warning fails it, and the CLI prints what.
 */
async function dbLint() {
  const { code, stdout, stderr } = await supabaseCli([
    "db",
    "lint",
    "--db-url",
    withoutTls(stack.dbUrl),
    "--schema",
    "herald,public",
    "--level",
    "warning",
    "--fail-on",
    "warning",
  ]);
  if (code !== 0) console.error(`supabase db lint:\n${stdout}${stderr}`);
  count("supabase db lint", code === 0 ? 1 : 0, code === 0 ? 0 : 1);
}

const started = Date.now();
let stop: (() => Promise<void>) | undefined;
try {
  await ensureServices();
  await ensure(await testRequirements());
  if (!only.length) await staticChecks();
  await Deno.remove(stack.dataDir, { recursive: true }).catch(() => {}); // absent on a first run
  console.log(`── starting the test stack in ${stack.dataDir}`);
  const running = await startStack(stack, { logToFiles: true });
  stop = running.stop;
  if (!only.length) await dbLint();
  if (!only.length || only.some((f) => f.endsWith(".ts"))) {
    // A per-test time limit (tests/support/time_limit.ts); the edge lane's Deno has no --preload.
    await denoTests(undefined, undefined, ["--preload", "tests/support/time_limit.ts"]);
    await edgeRuntimeTests();
  }
  if (!only.length || only.some((f) => f.endsWith(".sql"))) await pgTapTests();
} catch (error) {
  console.error(`npm test could not finish: ${(error as Error).stack ?? error}`);
  count("test harness", 0, 1);
} finally {
  await stop?.();
}
console.log(`── ${((Date.now() - started) / 1000).toFixed(1)} s; logs in ${stack.dataDir}/logs`);
for (const failure of failures) console.log(`✗ ${failure}`);
console.log(`${tally.passed} passed, ${tally.failed} failed`);
Deno.exit(tally.failed === 0 && tally.passed > 0 ? 0 : 1);
