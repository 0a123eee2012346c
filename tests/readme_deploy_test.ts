/**
 * The README's "Hosted Supabase" commands, run as written by the pinned
 * Supabase CLI against the Management API stand-in, from a clone of this
 * repository: placeholders (`<ref>`, `<password>`, `<region>`, `…`) are filled,
 * and nothing else changes but one thing — `supabase db push` goes to a
 * scratch database of the test stack with `--db-url`, because the linked
 * project's database (`db.<ref>.<project_host>:5432`) cannot be a loopback one.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { CLI_QUIET_ENV, withoutTls } from "../scripts/stack/supabase_cli.ts";
import { startManagementApi, writeProfile } from "./fakes/management_api.ts";
import { scratchDatabase } from "./support/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const REF = "readmereadmereadmere";

/** The first ```sh block after `heading` in the README, continuation lines joined, comments dropped. */
function shellBlock(readme: string, heading: string): string[] {
  const after = readme.slice(readme.indexOf(heading));
  const block = after.match(/```sh\n([\s\S]*?)```/)?.[1];
  if (!block) throw new Error(`no sh block after ${heading}`);
  return block.replace(/\\\n\s*/g, "").split("\n")
    .map((line) => line.replace(/\s+#\s.*$/, "").trim())
    .filter(Boolean);
}

Deno.test("README: the hosted deploy commands run as written with the real CLI", async () => {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const commands = shellBlock(readme, "### Hosted Supabase");
  assert.deepEqual(commands.map((c) => c.split(" ").slice(0, 3).join(" ")), [
    "supabase link --project-ref",
    "supabase db push",
    "supabase secrets set",
    "supabase functions deploy",
  ]);
  const work = await Deno.makeTempDir({ prefix: "herald-readme-" });
  const api = startManagementApi([{ ref: REF }]);
  try {
    const clone = `${work}/repo`;
    const git = await new Deno.Command("git", {
      args: ["clone", "--quiet", "--shared", ROOT, clone],
    }).output();
    assert.ok(git.success);
    await Deno.writeTextFile(`${clone}/service-account.json`, '{"type":"service_account"}');
    const env = {
      ...CLI_QUIET_ENV,
      PATH: `${ROOT}/node_modules/.bin:${Deno.env.get("PATH")}`,
      HOME: work,
      SUPABASE_PROFILE: await writeProfile(work, api.url),
      SUPABASE_ACCESS_TOKEN: "sbp_0123456789abcdef0123456789abcdef01234567",
      SUPABASE_DB_PASSWORD: "readme-password",
    };
    await scratchDatabase(async (url) => {
      for (const written of commands) {
        let command = written.replaceAll("<ref>", REF).replaceAll("<password>", "pw")
          .replaceAll("<region>", "eu-central-1").replaceAll("…", "readme-value");
        if (command === "supabase db push") {
          command += ` --db-url '${withoutTls(url)}'`;
        }
        const out = await new Deno.Command("sh", {
          args: ["-c", command],
          cwd: clone,
          env,
          clearEnv: true,
        }).output();
        assert.ok(
          out.success,
          `${written}\n${new TextDecoder().decode(out.stdout)}${
            new TextDecoder().decode(out.stderr)
          }`,
        );
      }
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      const [{ n }] =
        await sql`select count(*)::int as n from supabase_migrations.schema_migrations`;
      await sql.end();
      const migrations = [...Deno.readDirSync(`${ROOT}/supabase/migrations`)].length;
      assert.equal(n, migrations, "every migration applied, unchanged");
    });

    const written = [...api.secrets(REF).keys()].sort();
    assert.deepEqual(written, [
      "EMAIL_API_KEY",
      "FCM_SERVICE_ACCOUNT",
      "HERALD_DB_POOL_SIZE",
      "HERALD_DB_URL",
      "HERALD_DISPATCH_KEY",
      "HERALD_EMAIL_FROM",
      "HERALD_HOOK_SECRETS",
      "HERALD_JWT_SECRET",
      "UPSTASH_REDIS_REST_TOKEN",
      "UPSTASH_REDIS_REST_URL",
    ]);
    assert.equal(api.secrets(REF).get("FCM_SERVICE_ACCOUNT"), '{"type":"service_account"}');
    assert.equal(api.secrets(REF).get("HERALD_EMAIL_FROM"), "Acme <notify@acme.com>");
    const functions = api.functions(REF);
    assert.deepEqual(functions.map((f) => f.slug), [
      "dispatch",
      "health",
      "hooks",
      "metrics",
      "notify",
    ]);
    for (const f of functions) {
      assert.equal(f.verify_jwt, false, `${f.slug}: verify_jwt from config.toml`);
      assert.equal(f.import_map_path, "supabase/functions/deno.json", f.slug as string);
    }
  } finally {
    await api.close();
    await Deno.remove(work, { recursive: true });
  }
});
