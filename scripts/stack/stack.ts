/**
 * Starts a whole local stack — Postgres, Redis, the Upstash bridge, the
 * third-party stand-ins, one process per function, the gateway and
 * (optionally) a dispatcher — and stops it again.
 *
 * @module
 */
import { exportJWK, generateKeyPair } from "jose";
import { createServiceAccount } from "../../tests/fakes/google_oauth.ts";
import { LOCAL_HOOK_SECRET, type StackConfig } from "./config.ts";
import { discoverFunctions, type RoutedFunction } from "./edge_gateway.ts";
import { ensureServices } from "./packages.ts";
import { bootstrap, ensureCluster, migrate, psql, startPostgres } from "./postgres.ts";
import { startPrometheus } from "./prometheus.ts";
import { startRedis } from "./redis.ts";
import { Supervisor } from "./supervisor.ts";

/** Options for {@linkcode startStack}. */
export interface StartOptions {
  /** Write child output to `<dataDir>/logs/` instead of the terminal. */
  logToFiles?: boolean;
  /** Restart function processes when their code changes (`npm start`). */
  watch?: boolean;
  /** Run the long-running dispatcher. */
  dispatcher?: boolean;
  /** Run Prometheus beside the stack with Herald's rules (`npm run observe`). */
  observe?: boolean;
  /** Preload pg_stat_statements (`HERALD_BENCH_STATEMENTS=1` for a benchmark). */
  statementStats?: boolean;
}

/** A running stack. */
export interface RunningStack {
  functions: RoutedFunction[];
  /** Whether FCM goes to the local stand-in (no real credentials configured). */
  fakeFcm: boolean;
  migrationsApplied: string[];
  /** Where Prometheus answers, when `observe` started it. */
  prometheusUrl?: string;
  /** Process id of a running component (a function's name, `gateway`, …), for benchmarks. */
  pidOf(name: string): number | undefined;
  stop(): Promise<void>;
}

const DENO = Deno.execPath();

/** Starts every component of `stack` and waits until each one answers. */
export async function startStack(
  stack: StackConfig,
  options: StartOptions = {},
): Promise<RunningStack> {
  await ensureServices();
  await Deno.mkdir(stack.dataDir, { recursive: true });
  await _ensureLocalSecrets(stack);

  // A component that dies while the stack starts fails the start at once.
  let crashed: (error: Error) => void = () => {};
  const startupCrash = new Promise<never>((_, reject) => (crashed = reject));
  startupCrash.catch(() => {});
  const supervisor = new Supervisor({
    logDir: options.logToFiles ? `${stack.dataDir}/logs` : undefined,
    onUnexpectedExit: (name, status) => {
      const message = `herald: ${name} exited unexpectedly (code ${status.code})` +
        (options.logToFiles ? `; see ${stack.dataDir}/logs/${name}.log` : "");
      console.error(message);
      crashed(new Error(message));
    },
    onRestart: (name, status, delayMs) =>
      console.error(
        `herald: ${name} exited (code ${status.code}${
          status.signal ? `, ${status.signal}` : ""
        }); restarting it in ${delayMs / 1000} s`,
      ),
  });
  try {
    await ensureCluster(stack);
    await startPostgres(stack, supervisor, { statementStats: options.statementStats });
    await bootstrap(stack);
    const migrationsApplied = await migrate(stack);
    // The webhook_endpoints trigger reads the same allow-list as the send-time guard.
    await psql(stack, [
      "-c",
      `alter database postgres set herald.webhook_allow_hosts = '${
        webhookAllowHosts(stack).replaceAll("'", "''")
      }'`,
    ]);
    await startRedis(stack, supervisor);

    const stackEnv = {
      HERALD_STACK: stack.name,
      HERALD_PORT_BASE: String(stack.ports.gateway),
      HERALD_DATA_DIR: stack.dataDir,
    };
    const script = (name: string, path: string, env: Record<string, string> = {}) =>
      supervisor.spawn({
        name,
        command: DENO,
        args: ["run", "-A", "--no-prompt", path],
        env: { ...stackEnv, ...env },
        cwd: stack.root,
      });

    await script("bridge", "scripts/stack/bridge.ts");
    await script("fakes", "tests/fakes/main.ts");
    const fakeFcm = !Deno.env.get("FCM_SERVICE_ACCOUNT");
    const functionEnv = await functionEnvironment(stack, fakeFcm);
    const functions = await discoverFunctions(stack.root, stack.ports.functions);
    // Two edge-runtime pools behind Kong's upstream: stable and canary, each its own processes.
    const canaryFunctions = (await discoverFunctions(stack.root, stack.ports.functionsCanary))
      .map((f) => ({ ...f, instance: "canary" }));
    for (
      const fn of [...functions.map((f) => ({ ...f, instance: "stable" })), ...canaryFunctions]
    ) {
      await supervisor.spawn({
        name: fn.instance === "stable" ? fn.name : `${fn.name}-canary`,
        command: DENO,
        args: [
          "run",
          // What the edge runtime grants: network, environment, reading the code. No writes.
          "--allow-net",
          "--allow-env",
          "--allow-read",
          "--allow-sys",
          "--no-prompt",
          ...(options.watch ? ["--watch"] : []),
          "scripts/stack/function_host.ts",
          `supabase/functions/${fn.name}/index.ts`,
        ],
        env: {
          ...functionEnv,
          HERALD_INSTANCE: fn.instance,
          DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${fn.port}`,
        },
        cwd: stack.root,
      });
    }
    // Kong and the edge runtime's two front doors, in one process (a loopback hop less).
    await script("kong", "scripts/stack/kong/main.ts");
    // The inbox reads every stand-in's record: not beside a benchmark, whose numbers it would share.
    const inbox = stack.name !== "bench";
    if (inbox) await script("inbox", "scripts/stack/inbox/server.ts");
    await Promise.race([
      startupCrash,
      Promise.all([
        stack.ports.bridge,
        stack.ports.fcm,
        stack.ports.oauth,
        stack.ports.email,
        stack.ports.webhook,
        stack.ports.gateway,
        stack.ports.edge,
        stack.ports.edgeCanary,
        ...(inbox ? [stack.ports.inbox] : []),
        ...functions.map((f) => f.port),
        ...canaryFunctions.map((f) => f.port),
      ].map((port) => _waitForPort(port))),
    ]);
    crashed = () => {};
    if (options.dispatcher) {
      await supervisor.spawn({
        name: "dispatcher",
        command: DENO,
        args: ["run", "-A", "--no-prompt", "scripts/dispatcher.ts"],
        // The worker belongs to the stable deployment: its counters say so.
        env: { ...functionEnv, HERALD_INSTANCE: "stable" },
        cwd: stack.root,
        restart: true,
      });
    }
    const prometheus = options.observe
      ? await startPrometheus(stack, {
        port: stack.ports.prometheus,
        dataDir: `${stack.dataDir}/prometheus`,
        logDir: options.logToFiles ? `${stack.dataDir}/logs` : undefined,
      })
      : undefined;
    return {
      functions,
      fakeFcm,
      migrationsApplied,
      prometheusUrl: prometheus?.url,
      pidOf: (name) => supervisor.pidOf(name),
      stop: async () => {
        await prometheus?.stop();
        await supervisor.stopAll();
      },
    };
  } catch (error) {
    await supervisor.stopAll();
    throw error;
  }
}

/**
 * The environment a function gets on Supabase, plus Herald's own settings.
 * Real credentials in our environment win; otherwise the stand-ins are used.
 */
export async function functionEnvironment(
  stack: StackConfig,
  fakeFcm = !Deno.env.get("FCM_SERVICE_ACCOUNT"),
): Promise<Record<string, string>> {
  const env = (name: string) => Deno.env.get(name);
  const passThrough = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) =>
      name.startsWith("HERALD_") && !name.startsWith("HERALD_STACK") &&
      !["HERALD_PORT_BASE", "HERALD_DATA_DIR"].includes(name)
    ),
  );
  return {
    // Herald's tuning (HERALD_MAX_ATTEMPTS, HERALD_BREAKER_*, …) reaches the functions as set.
    ...passThrough,
    SUPABASE_URL: stack.apiUrl,
    SUPABASE_ANON_KEY: stack.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
    // As the platform sets them: JSON dictionaries of named keys.
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: stack.publishableKey }),
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: stack.secretKey }),
    SUPABASE_DB_URL: stack.dbUrl,
    HERALD_JWT_SECRET: stack.jwtSecret,
    UPSTASH_REDIS_REST_URL: env("UPSTASH_REDIS_REST_URL") ?? stack.redisRestUrl,
    UPSTASH_REDIS_REST_TOKEN: env("UPSTASH_REDIS_REST_TOKEN") ?? stack.redisRestToken,
    EMAIL_API_URL: env("EMAIL_API_URL") ??
      (env("EMAIL_API_KEY") ? "https://api.resend.com" : stack.fakes.email),
    EMAIL_API_KEY: env("EMAIL_API_KEY") ?? "re_local_stand_in",
    HERALD_EMAIL_FROM: env("HERALD_EMAIL_FROM") ?? "Herald <herald@localhost.test>",
    HERALD_HOOK_SECRETS: env("HERALD_HOOK_SECRETS") ?? LOCAL_HOOK_SECRET,
    HERALD_WEBHOOK_ALLOW_HOSTS: webhookAllowHosts(stack),
    // herald_build_info: the checkout's version and commit, unless set.
    HERALD_VERSION: env("HERALD_VERSION") ?? await _packageVersion(stack.root),
    ...(await _gitSha(stack.root)),
    ...(fakeFcm
      ? {
        FCM_SERVICE_ACCOUNT: await Deno.readTextFile(stack.serviceAccountPath),
        FCM_API_URL: stack.fakes.fcm,
      }
      : {}),
  };
}

/**
 * Hosts the SSRF guard lets through: the operator's, and the local webhook
 * receiver on loopback (its port only, so loopback's other services stay closed).
 */
function webhookAllowHosts(stack: StackConfig): string {
  return [Deno.env.get("HERALD_WEBHOOK_ALLOW_HOSTS"), new URL(stack.fakes.webhook).host]
    .filter(Boolean).join(",");
}

/** First start: a service account for the FCM stand-in, an ES256 key for user tokens. */
async function _ensureLocalSecrets(stack: StackConfig): Promise<void> {
  if (!(await _exists(stack.serviceAccountPath))) {
    const account = await createServiceAccount({
      projectId: "herald-local",
      tokenUri: `${stack.fakes.oauth}/token`,
    });
    await Deno.writeTextFile(stack.serviceAccountPath, JSON.stringify(account, null, 2), {
      mode: 0o600,
    });
  }
  if (!(await _exists(stack.jwtSigningKeyPath))) {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = {
      ...(await exportJWK(privateKey)),
      kid: crypto.randomUUID(),
      alg: "ES256",
      use: "sig",
    };
    await Deno.writeTextFile(stack.jwtSigningKeyPath, JSON.stringify(jwk, null, 2), {
      mode: 0o600,
    });
  }
}

async function _exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function _waitForPort(port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nothing listened on port ${port} within ${timeoutMs / 1000} s`);
}

async function _packageVersion(root: string): Promise<string> {
  return JSON.parse(await Deno.readTextFile(`${root}/package.json`)).version;
}

/** HERALD_GIT_SHA as set, else the checkout's HEAD; none outside a git checkout. */
async function _gitSha(root: string): Promise<Record<string, string>> {
  const set = Deno.env.get("HERALD_GIT_SHA");
  if (set) return { HERALD_GIT_SHA: set };
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "HEAD"],
      cwd: root,
      stderr: "null",
    })
      .output();
    const sha = new TextDecoder().decode(out.stdout).trim();
    return out.success && /^[0-9a-f]{40}$/.test(sha) ? { HERALD_GIT_SHA: sha } : {};
  } catch {
    return {};
  }
}
