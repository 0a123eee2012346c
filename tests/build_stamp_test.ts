/**
 * The stamped build (issue 14): `npm run stamp` compiles the git sha, version
 * and deployment into the bundle; configuration prefers it to the
 * environment (on hosted Supabase every slug shares the secrets); readiness
 * and the metrics report it.
 */
import assert from "node:assert/strict";
import { BUILD } from "../supabase/functions/_shared/build.ts";
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import { functionEnvironment } from "../scripts/stack/stack.ts";
import { stack } from "./support/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function stamp(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    // The edge-runtime lane's older Deno runs it as it runs everything (no check, no lock).
    args: [
      "run",
      "-A",
      ...(Deno.env.get("HERALD_DENO_RUN_FLAGS") ?? "").split(" ").filter(Boolean),
      `${ROOT}scripts/stamp_build.ts`,
      ...args,
    ],
    cwd: ROOT,
  }).output();
  return {
    code: out.code,
    text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

Deno.test("stamp: writes the checkout's sha, the package version and the deployment as a module", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, text } = await stamp("--deployment", "canary", "--out", `${dir}/build.ts`);
    assert.equal(code, 0, text);
    const head = new TextDecoder().decode(
      (await new Deno.Command("git", { args: ["rev-parse", "HEAD"], cwd: ROOT }).output()).stdout,
    ).trim();
    const { version } = JSON.parse(await Deno.readTextFile(`${ROOT}package.json`));
    const stamped = await import(`file://${dir}/build.ts`);
    assert.deepEqual(stamped.BUILD, { gitSha: head, version, deployment: "canary" });
    // The committed module stays unstamped.
    assert.deepEqual(BUILD, { gitSha: "", version: "", deployment: "" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stamp: a deployment name that is not a short lowercase name is refused (exit 2)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, text } = await stamp("--deployment", "Canary Release", "--out", `${dir}/b.ts`);
    assert.equal(code, 2);
    assert.match(text, /--deployment must be a short lowercase name/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build: a stamped build wins over the environment; unstamped, the environment decides", async () => {
  const env = {
    ...await functionEnvironment(stack, true),
    HERALD_INSTANCE: "stable",
    HERALD_GIT_SHA: "0123456789abcdef0123456789abcdef01234567",
    HERALD_VERSION: "9.9.9",
  };
  assert.deepEqual(loadConfig(env).build, {
    instance: "stable",
    version: "9.9.9",
    gitSha: "0123456789abcdef0123456789abcdef01234567",
  });
  Object.assign(BUILD, { gitSha: "f".repeat(40), version: "1.0.0", deployment: "canary" });
  try {
    assert.deepEqual(loadConfig(env).build, {
      instance: "canary",
      version: "1.0.0",
      gitSha: "f".repeat(40),
    });
  } finally {
    Object.assign(BUILD, { gitSha: "", version: "", deployment: "" });
  }
});

Deno.test("build: readiness shows key holders the build answering", async () => {
  const response = await fetch(`${stack.apiUrl}/functions/v1/health/ready`, {
    headers: { apikey: stack.anonKey, authorization: `Bearer ${stack.serviceRoleKey}` },
  });
  const body = await response.json();
  assert.match(body.build.git_sha, /^[0-9a-f]{40}$/);
  assert.match(body.build.deployment, /^(stable|canary)$/);
  assert.equal(body.build.version, "0.1.0");
  const anonymous = await (await fetch(`${stack.apiUrl}/functions/v1/health/ready`, {
    headers: { apikey: stack.anonKey },
  })).json();
  assert.equal(anonymous.build, undefined, "not for anyone");
});
