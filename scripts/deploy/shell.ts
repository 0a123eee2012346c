/**
 * How the deployment manager talks: every step announced before it runs, every
 * command echoed (with secrets masked) and its failure turned into a
 * {@linkcode StepFailed} that names the command.
 *
 * @module
 */

/** A step that could not be done; the manager stops (or rolls back) on it. */
export class StepFailed extends Error {
  override name = "StepFailed";
}

/** Values that never appear in what the manager prints. */
const secrets = new Set<string>();

/** Masks `value` wherever the manager prints it from now on. */
export function secret(value: string | undefined): void {
  if (value && value.length >= 6) secrets.add(value);
}

/** `text` with every registered secret replaced by `***`. */
export function masked(text: string): string {
  let out = text;
  for (const value of secrets) out = out.replaceAll(value, "***");
  return out;
}

/** Prints a numbered-looking step header: `==> what`. */
export function step(what: string): void {
  console.log(`==> ${masked(what)}`);
}

/** Prints a detail under the current step. */
export function say(what: string): void {
  console.log(`    ${masked(what)}`);
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Capture stdout and return it instead of passing it through. */
  capture?: boolean;
  cwd?: string;
  env?: Record<string, string>;
}

/**
 * Runs `command args…`, echoing it first as `$ command args…`. Output passes
 * through unless `capture`; stderr always does, and its last line is kept for
 * the failure's message (what the CLI said, not only its exit code).
 *
 * @throws {StepFailed} when it exits non-zero or cannot start
 */
export async function run(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<string> {
  console.log(masked(`    $ ${[command, ...args].map(_quote).join(" ")}`));
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: "null",
      stdout: options.capture ? "piped" : "inherit",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new StepFailed(
      error instanceof Deno.errors.NotFound
        ? `${command} is not on PATH`
        : `${command} could not start: ${(error as Error).message}`,
    );
  }
  // A command that hangs (a stalled API, a dead network) fails the step instead of the run.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }, _timeoutS() * 1000);
  let stderr = "";
  const relay = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + chunk).slice(-4096);
      await Deno.stderr.write(new TextEncoder().encode(masked(chunk)));
    }
  })();
  const stdout = options.capture ? new Response(child.stdout).text() : Promise.resolve("");
  const [status, out] = await Promise.all([child.status, stdout, relay])
    .finally(() => clearTimeout(timer));
  if (timedOut) {
    const what = args.filter((a, i) => a !== "--workdir" && args[i - 1] !== "--workdir");
    throw new StepFailed(
      masked(`${command} ${what.slice(0, 2).join(" ")} did not finish within ${_timeoutS()} s`) +
        " (HERALD_CLI_TIMEOUT_S)",
    );
  }
  if (!status.success) {
    const what = args.filter((a, i) => a !== "--workdir" && args[i - 1] !== "--workdir");
    // The CLI's error line (a Postgres `ERROR: …` wins over the context it prints after it).
    const lines = stderr.split("\n").map((l) => l.trim())
      .filter((l) => /\w/.test(l) && !/^Try rerunning the command with --debug/.test(l));
    const said = lines.find((l) => /^ERROR:/.test(l)) ?? lines.at(-1);
    throw new StepFailed(
      masked(`${command} ${what.slice(0, 2).join(" ")} exited ${status.code}`) +
        (said ? `: ${masked(said)}` : ""),
    );
  }
  return out;
}

/** How long one command may take: HERALD_CLI_TIMEOUT_S, default 900 s (a deploy's uploads fit). */
function _timeoutS(): number {
  const value = Number(Deno.env.get("HERALD_CLI_TIMEOUT_S") ?? 900);
  return Number.isFinite(value) && value > 0 ? value : 900;
}

function _quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
