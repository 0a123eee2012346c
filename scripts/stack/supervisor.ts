/**
 * Starts the stack's child processes and stops every one of them again.
 *
 * Output of each child is prefixed with its name and either shown (npm start)
 * or appended to `<dataDir>/logs/<name>.log` (npm test), so a failing test run
 * leaves the logs that explain it.
 *
 * @module
 */

/** How to start one child. */
export interface ChildSpec {
  /** Short name used in log prefixes and log file names. */
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Signal that asks this child for a clean, fast shutdown. @default "SIGTERM" */
  stopSignal?: Deno.Signal;
  /**
   * Start it again when it exits on its own, after 1 s, doubling up to 30 s
   * while it keeps dying within a minute of starting. @default false
   */
  restart?: boolean;
}

interface Running {
  spec: ChildSpec;
  child: Deno.ChildProcess;
  piping: Promise<void>;
}

/** Options for {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** Directory for per-child log files; when absent, output goes to the terminal. */
  logDir?: string;
  /** Called when a child exits while the supervisor is not stopping. */
  onUnexpectedExit?: (name: string, status: Deno.CommandStatus) => void;
  /** Called when a child with `restart` exited and is started again after `delayMs`. */
  onRestart?: (name: string, status: Deno.CommandStatus, delayMs: number) => void;
}

/** Owns the child processes of one stack. */
export class Supervisor {
  #running: Running[] = [];
  #stopping = false;
  #restarts = new Set<() => void>();
  #options: SupervisorOptions;

  constructor(options: SupervisorOptions = {}) {
    this.#options = options;
  }

  /** Spawns a child; its output is prefixed or logged, its exit watched. */
  async spawn(spec: ChildSpec, restartDelayMs = 0): Promise<Deno.ChildProcess> {
    const startedAt = performance.now();
    const child = new Deno.Command(spec.command, {
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      // A session of its own: a terminal's Ctrl-C reaches only the supervisor, which stops
      // the children in order (the dispatcher before the Postgres it writes its results to).
      detached: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const sink = await this.#sink(spec.name);
    const piping = Promise.all([
      _pipeLines(child.stdout, spec.name, sink),
      _pipeLines(child.stderr, spec.name, sink),
    ]).then(() => sink.close());
    const running = { spec, child, piping };
    this.#running.push(running);
    child.status.then(async (status) => {
      if (this.#stopping) return;
      if (!running.spec.restart) return this.#options.onUnexpectedExit?.(spec.name, status);
      // A child that ran a minute was healthy: its next failure starts the backoff over.
      const delayMs = performance.now() - startedAt > 60_000
        ? 1_000
        : Math.min(Math.max(2 * restartDelayMs, 1_000), 30_000);
      this.#options.onRestart?.(spec.name, status, delayMs);
      await piping;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#restarts.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, delayMs);
        this.#restarts.add(wake);
      });
      if (this.#stopping) return;
      this.#running = this.#running.filter((r) => r !== running);
      await this.spawn(running.spec, delayMs);
    });
    return child;
  }

  /**
   * From now on, starts `name` again whenever it exits on its own, as
   * `ChildSpec.restart` does: for a service that must first come up once
   * (a Postgres that cannot start fails the stack's start, one that crashes
   * later comes back).
   */
  keepAlive(name: string): void {
    const running = this.#running.find((r) => r.spec.name === name);
    if (running) running.spec = { ...running.spec, restart: true };
  }

  /** Process id of the running child named `name`, if any (benchmarks read its CPU from /proc). */
  pidOf(name: string): number | undefined {
    return this.#running.find((running) => running.spec.name === name)?.child.pid;
  }

  /** Runs a command to completion with output captured; throws with its output if it fails. */
  static async run(
    command: string,
    args: string[],
    options: { env?: Record<string, string>; cwd?: string } = {},
  ): Promise<string> {
    const out = await new Deno.Command(command, { args, ...options, stdin: "null" }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (!out.success) {
      throw new Error(`${command} ${args.join(" ")} exited with ${out.code}:\n${text}`);
    }
    return text;
  }

  /** Stops children in reverse start order; SIGKILL after `graceMs`. */
  async stopAll(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    for (const wake of [...this.#restarts]) wake();
    for (const running of [...this.#running].reverse()) {
      await _stop(running, graceMs);
    }
    this.#running = [];
  }

  async #sink(name: string): Promise<LineSink> {
    if (!this.#options.logDir) {
      return { write: (line) => console.log(`${name.padEnd(10)} │ ${line}`), close: () => {} };
    }
    await Deno.mkdir(this.#options.logDir, { recursive: true });
    const file = await Deno.open(`${this.#options.logDir}/${name}.log`, {
      create: true,
      append: true,
    });
    const encoder = new TextEncoder();
    let chain = Promise.resolve();
    return {
      write: (line) => {
        chain = chain.then(async () => {
          await file.write(encoder.encode(line + "\n"));
        });
      },
      close: () => chain.then(() => file.close()),
    };
  }
}

interface LineSink {
  write(line: string): void;
  close(): void | Promise<void>;
}

async function _pipeLines(stream: ReadableStream<Uint8Array>, _name: string, sink: LineSink) {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) sink.write(line);
  }
  if (buffered) sink.write(buffered);
}

async function _stop({ spec, child, piping }: Running, graceMs: number): Promise<void> {
  try {
    child.kill(spec.stopSignal ?? "SIGTERM");
  } catch {
    // Already exited: nothing to stop.
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited during the grace period.
    }
  }, graceMs);
  await child.status;
  clearTimeout(timer);
  await piping;
}
