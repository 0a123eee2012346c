/**
 * `npm test`'s time limit per test (tests/support/time_limit.ts): a test that
 * waits forever fails by its own name and file after the limit, and the run
 * goes on to the next test.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("time limit: a test waiting on an answer that never comes fails by name; the next one runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "herald-time-limit-" });
  try {
    await Deno.writeTextFile(
      `${dir}/hang_test.ts`,
      [
        'Deno.test("waits for a server that never answers", async () => {',
        "  const server = Deno.serve({ port: 0, onListen() {} }, () => new Promise(() => {}));",
        "  try {",
        "    await fetch(`http://127.0.0.1:${server.addr.port}/`);",
        "  } finally {",
        "    await server.shutdown();",
        "  }",
        "});",
        'Deno.test({ name: "runs after it", fn() {} });',
      ].join("\n"),
    );
    const started = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "test",
        "-A",
        "--no-check",
        "--preload",
        `${ROOT}tests/support/time_limit.ts`,
        `--junit-path=${dir}/junit.xml`,
        "hang_test.ts",
      ],
      cwd: dir,
      env: { HERALD_TEST_LIMIT_S: "1", NO_COLOR: "1" },
    }).output();
    const seconds = (performance.now() - started) / 1000;
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.success, false, text);
    assert.ok(seconds < 30, `finished in ${seconds} s`);
    assert.match(
      text,
      /"waits for a server that never answers" ran past the time limit of 1 s per test/,
    );
    assert.match(text, /runs after it \.\.\. ok/);
    const junit = await Deno.readTextFile(`${dir}/junit.xml`);
    assert.match(
      junit,
      /<testcase name="waits for a server that never answers" classname="\.\/hang_test\.ts"[^>]*>\s*<failure/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("time limit: HERALD_TEST_LIMIT_S that is not a usable number of seconds stops the run, saying so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "herald-time-limit-" });
  try {
    await Deno.writeTextFile(`${dir}/quick_test.ts`, 'Deno.test("quick", () => {});\n');
    for (const value of ["0", "abc", "1.5", "3000000"]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "test",
          "-A",
          "--no-check",
          "--preload",
          `${ROOT}tests/support/time_limit.ts`,
          "quick_test.ts",
        ],
        cwd: dir,
        env: { HERALD_TEST_LIMIT_S: value, NO_COLOR: "1" },
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.success, false, value);
      assert.match(text, /HERALD_TEST_LIMIT_S must be a whole number of seconds from 1 to 2147483/);
    }
    const unset = await new Deno.Command(Deno.execPath(), {
      args: [
        "test",
        "-A",
        "--no-check",
        "--preload",
        `${ROOT}tests/support/time_limit.ts`,
        "quick_test.ts",
      ],
      cwd: dir,
      env: { HERALD_TEST_LIMIT_S: "", NO_COLOR: "1" },
    }).output();
    assert.equal(unset.success, true, "empty means the default");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
