/**
 * The README's commands, run as a new user would: the "Try it" block line
 * by line in one bash session against the test stack (its dev ports mapped
 * to the test stack's, `<notification id>` filled from the answer before).
 * Every literal `"key":value` an answer shown after `# →` holds must be in
 * the real answer, so an example that drifts from the API fails here.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { portsFrom } from "../scripts/stack/config.ts";
import { applyMigrations } from "../scripts/stack/supabase_cli.ts";
import { scratchDatabase, stack } from "./support/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const DEV_PORTS = portsFrom(54321);

/** The dev stack's addresses in `text`, as the test stack's. */
function onTestStack(text: string): string {
  for (const [name, port] of Object.entries(DEV_PORTS)) {
    text = text.replaceAll(
      `127.0.0.1:${port}`,
      `127.0.0.1:${stack.ports[name as keyof typeof DEV_PORTS]}`,
    );
  }
  return text;
}

/** A ```sh block's commands (continuation lines joined) and the answer each shows after `# →`. */
function commands(block: string): { command: string; shown: string }[] {
  const out: { command: string; shown: string }[] = [];
  let continuing = false;
  for (const line of block.split("\n")) {
    const trimmed = line.trim();
    if (continuing) {
      out.at(-1)!.command += "\n" + line;
      continuing = trimmed.endsWith("\\");
    } else if (trimmed.startsWith("# →") || (trimmed.startsWith("#") && out.at(-1)?.shown)) {
      if (out.length > 0) out.at(-1)!.shown += trimmed.replace(/^#\s*(→)?/, "") + "\n";
    } else if (trimmed && !trimmed.startsWith("#")) {
      out.push({ command: line, shown: "" });
      continuing = trimmed.endsWith("\\");
    }
  }
  return out;
}

/** The literal pairs of a shown answer: `"key":"value"`, numbers, booleans, `[]` — not those elided with `…` or standing for a value (`<notification id>`). */
function literalPairs(shown: string): string[] {
  return [
    ...shown.matchAll(/"[a-z_]+":(?:"[^"…<]*"|-?\d+(?:\.\d+)?|true|false|null|\[\])(?=[,}\]])/g),
  ]
    .map((m) => m[0]);
}

Deno.test("README: the Try-it block runs against the stack and answers what it shows", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const block = readme.match(/## Try it[^\n]*\n[\s\S]*?```sh\n([\s\S]*?)```/)?.[1];
  assert.ok(block, "the README has a Try-it shell block");
  const steps = commands(onTestStack(block));
  assert.ok(steps.length >= 5, `commands found: ${steps.length}`);
  const dir = await Deno.makeTempDir({ prefix: "herald-readme-" });
  // One session, so variables carry over; each command's answer to a file of its own.
  const script = ["set -u"];
  steps.forEach((step, i) => {
    script.push(
      `{ ${
        step.command.replaceAll("<notification id>", "$README_LAST_ID")
      }\n} > ${dir}/${i}.out 2>&1`,
      `README_LAST_ID=$(grep -o '"id":"[^"]*"' ${dir}/${i}.out | head -1 | cut -d'"' -f4 || true)`,
    );
  });
  const run = await new Deno.Command("bash", {
    args: ["-c", script.join("\n")],
    cwd: ROOT,
    env: { HERALD_STACK: "test", PATH: Deno.env.get("PATH")!, HOME: Deno.env.get("HOME")! },
    clearEnv: true,
    stderr: "piped",
  }).output();
  assert.ok(run.success, new TextDecoder().decode(run.stderr));
  let checked = 0;
  for (const [i, step] of steps.entries()) {
    const answer = await Deno.readTextFile(`${dir}/${i}.out`);
    for (const pair of literalPairs(step.shown)) {
      assert.ok(
        answer.includes(pair),
        `${step.command.split("\n")[0]}\nshows ${pair}; got ${answer}`,
      );
      checked++;
    }
  }
  assert.ok(checked >= 8, `literal pairs checked: ${checked}`);
  const fcm = await Deno.readTextFile(`${dir}/${steps.length - 1}.out`);
  assert.match(fcm, /"token":"demo-device-1"/, "the FCM stand-in received the push");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("README: the Vault and schedule_jobs block is what supabase/tests/schedule_jobs_test.sql runs (against Vault's and pg_net's signatures)", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const block = readme.match(/```sql\n(select vault\.create_secret[\s\S]*?)```/)?.[1];
  assert.ok(block, "the README has the Vault block");
  const pgtap = await Deno.readTextFile(`${ROOT}supabase/tests/schedule_jobs_test.sql`);
  const filled = block
    .replace("https://<ref>.supabase.co", "https://example.supabase.co")
    .replace("<HERALD_DISPATCH_KEY>", "sb_secret_stand_in");
  assert.ok(pgtap.includes(filled), `schedule_jobs_test.sql runs:\n${filled}`);
});

Deno.test("SELF_HOSTING: the standalone-Kong command, as written, renders a file kong:validate passes", async () => {
  const guide = await Deno.readTextFile(`${ROOT}docs/SELF_HOSTING.md`);
  const block = guide.match(/## Standalone Kong[\s\S]*?```sh\n([\s\S]*?)```/)?.[1];
  assert.ok(block && block.includes("--hosted <ref>"), "the guide's render command");
  const dir = await Deno.makeTempDir({ prefix: "herald-self-hosting-" });
  const out = `${dir}/kong.yml`;
  const command = block.trim().replace("<ref>", "abcdefghijklmnopqrst").replace(
    "/etc/kong/kong.yml",
    out,
  );
  // The variables the guide's table lists, minus the two --hosted does without.
  const env = {
    PATH: Deno.env.get("PATH")!,
    HOME: Deno.env.get("HOME")!,
    SUPABASE_ANON_KEY: "anon-legacy-key",
    SUPABASE_PUBLISHABLE_KEY: "sb_publishable_guide",
    SUPABASE_SERVICE_KEY: "service-legacy-key",
    SUPABASE_SECRET_KEY: "sb_secret_guide",
    SUPABASE_API_KEY_ISSUER: "supabase",
    SUPABASE_JWT_SECRET: "super-secret-jwt-token-with-at-least-32-characters-long",
    SUPABASE_AUTH_ISSUER: "https://abcdefghijklmnopqrst.supabase.co/auth/v1",
    HERALD_BACKEND_HMAC_SECRET: "backend-hmac-secret",
    HERALD_KONG_REDIS_HOST: "redis",
    HERALD_KONG_REDIS_PORT: "6379",
    HERALD_KONG_REDIS_PASSWORD: "",
    HERALD_INTERNAL_CIDR: "10.0.0.0/8",
  };
  try {
    for (const line of [command, `npm run kong:validate -- ${out}`]) {
      const run = await new Deno.Command("bash", {
        args: ["-c", line],
        cwd: ROOT,
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(run.stderr);
      assert.ok(run.success, `${line}\n${said}`);
    }
    assert.match(await Deno.readTextFile(out), /abcdefghijklmnopqrst\.supabase\.co/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("README: `npm run schema`, run as written in a copy of the checkout, writes the schema.sql that is committed", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  assert.match(readme, /`npm run schema` rewrites `supabase\/schema.sql`/);
  const copy = await Deno.makeTempDir({ prefix: "herald-schema-" });
  await Deno.chmod(copy, 0o755); // its cluster's owner (postgres, when we are root) reads it
  try {
    const listed = await new Deno.Command("git", {
      args: ["ls-files", "-co", "--exclude-standard", "-z"],
      cwd: ROOT,
    }).output();
    const files = new TextDecoder().decode(listed.stdout).split("\0").filter(Boolean);
    for (const file of files) {
      const from = `${ROOT}${file}`;
      if (!(await Deno.stat(from).catch(() => undefined))?.isFile) continue;
      await Deno.mkdir(`${copy}/${file}`.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.copyFile(from, `${copy}/${file}`);
    }
    await Deno.symlink(`${ROOT}node_modules`, `${copy}/node_modules`);
    await Deno.writeTextFile(`${copy}/supabase/schema.sql`, "stale\n");
    // Its own test stack, on ports and in a directory of its own beside this run's.
    const run = await new Deno.Command("npm", {
      args: ["run", "schema"],
      cwd: copy,
      env: {
        HERALD_PORT_BASE: String(stack.ports.gateway + 2000),
        HERALD_DATA_DIR: `${copy}/.data`,
      },
      stdin: "null",
    }).output();
    const output = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
    assert.ok(run.success, output.slice(-3000));
    assert.match(output, /^1 passed, 0 failed$/m);
    assert.equal(
      await Deno.readTextFile(`${copy}/supabase/schema.sql`),
      await Deno.readTextFile(`${ROOT}supabase/schema.sql`),
    );
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
});

Deno.test("README: `npm run worker`, as written, adds a dispatcher that beats, and Ctrl-C stops it", async () => {
  assert.match(
    await Deno.readTextFile(`${ROOT}README.md`),
    /`npm run worker`, beside a\s+running `npm start`/,
  );
  // Its own database: a worker on the test stack's would claim other tests' deliveries.
  await scratchDatabase(async (url) => {
    await applyMigrations(url);
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    // What `npm run worker` runs, started straight so the signal reaches it
    // as a terminal's Ctrl-C reaches the whole foreground group.
    const script = JSON.parse(await Deno.readTextFile(`${ROOT}package.json`)).scripts.worker;
    assert.equal(script, "sh scripts/deno.sh run -A scripts/stack/worker.ts");
    const worker = new Deno.Command("sh", {
      args: ["scripts/deno.sh", "run", "-A", "scripts/stack/worker.ts"],
      cwd: ROOT,
      env: { HERALD_DB_URL: url, HERALD_INSTANCE: "readme-worker" },
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const beats = async () =>
        (await sql`select count(*)::int as n from herald.dispatchers
          where instance = 'readme-worker'`)[0].n;
      const deadline = Date.now() + 60_000;
      while (await beats() === 0) {
        assert.ok(Date.now() < deadline, "no heartbeat within 60 s");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      worker.kill("SIGINT");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const { code } = await Promise.race([
        worker.status,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("still running 20 s after SIGINT")), 20_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(code, 0, "stopped cleanly");
      assert.equal(await beats(), 0, "its heartbeat row is gone");
    } finally {
      try {
        worker.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await sql.end();
    }
  });
});
