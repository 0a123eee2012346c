import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { knownKeys, unknownKeys } from "../scripts/deploy/config_keys.ts";
import { supabaseCli } from "../scripts/stack/supabase_cli.ts";

/** The pinned CLI's own `supabase init` template, made in a scratch folder. */
async function cliTemplate(): Promise<string> {
  const scratch = await Deno.makeTempDir({ prefix: "herald-init-test-" });
  try {
    const init = await supabaseCli(["init", "--workdir", scratch, "--yes"]);
    assert.equal(init.code, 0, init.stderr);
    return await Deno.readTextFile(`${scratch}/supabase/config.toml`);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

const TEMPLATE = `project_id = "x"

[api]
enabled = true
port = 54321
# max_rows = 1000

[db]
port = 54322

# [db.vault]
# secret_key = "env(SECRET_VALUE)"
`;

Deno.test("config keys: present and commented-out template keys are known; function tables take the CLI's function keys", () => {
  const known = knownKeys(TEMPLATE);
  const cases: [string, string[]][] = [
    ['project_id = "h"\n[api]\nport = 1\nmax_rows = 5', []],
    ["[db.vault]\nsecret_key = 'x'", []],
    ["[functions.notify]\nverify_jwt = false\nimport_map = 'a'\nentrypoint = 'b'", []],
    ["[functions.notify]\nverify_jwts = false", ["functions.notify.verify_jwts"]],
    ["[api]\nprot = 1", ["api.prot"]],
    ["[edge_runtimes]\npolicy = 'x'", ["edge_runtimes"]],
    ["projectid = 'x'", ["projectid"]],
  ];
  for (const [toml, unknown] of cases) {
    assert.deepEqual(unknownKeys(parse(toml), known), unknown, toml);
  }
});

Deno.test("config keys: the pinned CLI's own template passes, and its maps take the user's names, checked against an entry's keys", async () => {
  const template = await cliTemplate();
  const known = knownKeys(template);
  assert.deepEqual(unknownKeys(parse(template), known), [], "the template itself");
  const cases: [string, string[]][] = [
    ["[auth.external.github]\nenabled = true\nclient_id = 'x'", []],
    ["[auth.external.github]\nclient_idd = 'x'", ["auth.external.github.client_idd"]],
    ["[storage.buckets.images]\npublic = false", []],
    ["[auth.email.template.invite]\nsubject = 'x'\ncontent_path = 'y'", []],
    ["[auth.hook.send_email]\nenabled = true\nuri = 'x'", []],
    ["[edge_runtime.secrets]\nFOO = 'x'", []],
    ["[remotes.staging]\nproject_id = 'x'\n[remotes.staging.db]\nport = 1", []],
    ["[remotes.staging.dbb]\nport = 1", ["remotes.staging.dbb"]],
    ["[functions.__proto__]\nverify_jwt = false", ["functions.__proto__"]],
    ["[functions.notify]\nverify_jwts = false", ["functions.notify.verify_jwts"]],
  ];
  for (const [toml, unknown] of cases) {
    assert.deepEqual(unknownKeys(parse(toml), known), unknown, toml);
  }
});

Deno.test("config keys: Herald's config.toml holds only keys the pinned CLI knows", async () => {
  const known = knownKeys(await cliTemplate());
  const ours = parse(
    await Deno.readTextFile(new URL("../supabase/config.toml", import.meta.url)),
  );
  assert.deepEqual(unknownKeys(ours, known), []);
});
