/**
 * A Prometheus (Debian's package) beside a local stack: it scrapes Herald's
 * metrics function through the API port and the local Kong's status port, and
 * evaluates Herald's rules. `npm run observe` and the end-to-end alert test
 * start it.
 *
 * @module
 */
import { stringify } from "yaml";
import type { StackConfig } from "./config.ts";
import { ensure, PROMETHEUS } from "./packages.ts";
import { Supervisor } from "./supervisor.ts";

/** Options for {@linkcode startPrometheus}. */
export interface PrometheusOptions {
  port: number;
  /** Its configuration and TSDB live here. */
  dataDir: string;
  /** Rule files to evaluate. @default Herald's rules.yml */
  ruleFiles?: string[];
  /** @default "15s" */
  scrapeInterval?: string;
  /** @default the scrape interval */
  evaluationInterval?: string;
  /** Child output goes here instead of the terminal. */
  logDir?: string;
}

/** A running Prometheus. */
export interface RunningPrometheus {
  url: string;
  stop(): Promise<void>;
}

/** Herald's rules, as shipped. */
export const HERALD_RULES = new URL("../../observability/prometheus/rules.yml", import.meta.url)
  .pathname;

/** The scrape configuration for `stack`: Herald's endpoint with the service key, and Kong's. */
export function prometheusConfig(stack: StackConfig, options: PrometheusOptions): string {
  const scrape = options.scrapeInterval ?? "15s";
  return stringify({
    global: {
      scrape_interval: scrape,
      evaluation_interval: options.evaluationInterval ?? scrape,
      scrape_timeout: scrape.endsWith("ms") || parseFloat(scrape) < 10 ? scrape : "10s",
    },
    rule_files: options.ruleFiles ?? [HERALD_RULES],
    scrape_configs: [
      {
        job_name: "herald",
        metrics_path: "/functions/v1/metrics",
        authorization: { type: "Bearer", credentials: stack.serviceRoleKey },
        static_configs: [{ targets: [`127.0.0.1:${stack.ports.gateway}`] }],
      },
      {
        job_name: "kong",
        metrics_path: "/metrics",
        static_configs: [{ targets: [`127.0.0.1:${stack.ports.kongStatus}`] }],
      },
    ],
  });
}

/**
 * Where the alerts page is. Debian's Prometheus 2.42 ships only the classic
 * UI: `/alerts` and `/graph` are 404 there, `/classic/…` answer.
 */
export const PROMETHEUS_ALERTS_PATH = "/classic/alerts";

/** Starts Prometheus and waits until it is ready. */
export async function startPrometheus(
  stack: StackConfig,
  options: PrometheusOptions,
): Promise<RunningPrometheus> {
  await ensure([PROMETHEUS]);
  await Deno.mkdir(`${options.dataDir}/tsdb`, { recursive: true });
  const configFile = `${options.dataDir}/prometheus.yml`;
  // The service key is in it: readable by its owner only.
  await Deno.writeTextFile(configFile, prometheusConfig(stack, options), { mode: 0o600 });
  const supervisor = new Supervisor({ logDir: options.logDir });
  await supervisor.spawn({
    name: "prometheus",
    command: "prometheus",
    args: [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${options.dataDir}/tsdb`,
      `--web.listen-address=127.0.0.1:${options.port}`,
      "--storage.tsdb.retention.time=2d",
    ],
  });
  const url = `http://127.0.0.1:${options.port}`;
  for (let i = 0;; i++) {
    try {
      const response = await fetch(`${url}/-/ready`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (i > 300) {
      await supervisor.stopAll();
      throw new Error(`Prometheus did not become ready at ${url}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, stop: () => supervisor.stopAll() };
}
