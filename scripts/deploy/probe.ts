/**
 * A deployed Herald as the deployment manager sees it from outside: its
 * functions' URLs (stable, and the canary's — the `-canary` slugs on hosted
 * Supabase, or a canary edge runtime of its own), readiness, a scrape of the
 * metrics endpoint, and the smoke test.
 *
 * @module
 */
import { say, StepFailed } from "./shell.ts";

/** The build a function reports on `/health/ready` to key holders. */
export interface Build {
  version: string;
  git_sha: string;
  deployment: string;
}

/** Where a deployed Herald answers, and the key it is asked with. */
export interface Service {
  /** Functions base, e.g. `https://<ref>.supabase.co/functions/v1`. */
  url: string;
  /** The canary's functions base; unset: the canary answers as `<name>-canary` under `url`. */
  canaryUrl?: string;
  /** The service-role (or a secret) key: readiness details, metrics, raw targets. */
  key: string;
}

/** The URL of function `name` in stable or the canary. */
export function functionUrl(service: Service, name: string, canary = false): string {
  const base = service.url.replace(/\/+$/, "");
  if (!canary) return `${base}/${name}`;
  return service.canaryUrl
    ? `${service.canaryUrl.replace(/\/+$/, "")}/${name}`
    : `${base}/${name}-canary`;
}

function _headers(service: Service): HeadersInit {
  // apikey for a Kong in front (key-auth); Bearer for the function itself.
  return { apikey: service.key, authorization: `Bearer ${service.key}` };
}

/**
 * Reads `/health/ready` of stable or the canary.
 *
 * @throws {StepFailed} unless it answers 200 with the build
 */
export async function readiness(service: Service, canary = false): Promise<Build> {
  const url = `${functionUrl(service, "health", canary)}/ready`;
  let response: Response;
  try {
    response = await fetch(url, {
      headers: _headers(service),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (error) {
    throw new StepFailed(`${url} did not answer: ${(error as Error).message}`);
  }
  const body = await response.json().catch(() => ({})) as { status?: string; build?: Build };
  if (response.status !== 200) {
    throw new StepFailed(`${url} answered ${response.status} (${body.status ?? "no status"})`);
  }
  if (!body.build) throw new StepFailed(`${url} did not show its build: is the key right?`);
  say(
    `${canary ? "canary" : "stable"} ready: ${body.build.deployment} ` +
      `${body.build.git_sha.slice(0, 12)} ${body.build.version}`,
  );
  return body.build;
}

/** One scrape of the metrics endpoint (the Prometheus text format). */
export async function scrape(service: Service): Promise<string> {
  const url = functionUrl(service, "metrics");
  const response = await fetch(url, {
    headers: _headers(service),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  if (response.status !== 200) throw new StepFailed(`${url} answered ${response.status}`);
  return text;
}

/**
 * The smoke test: one push to `deviceToken` with FCM's `validate_only`, so
 * FCM checks the whole message and the token and no device shows anything,
 * then its status until the delivery is `sent`.
 *
 * @throws {StepFailed} when the request is refused or the delivery does not end `sent` in time
 */
export async function smokeTest(
  service: Service,
  options: { canary?: boolean; deviceToken: string; timeoutMs?: number },
): Promise<void> {
  const url = functionUrl(service, "notify", options.canary);
  const response = await fetch(url, {
    method: "POST",
    headers: { ..._headers(service), "content-type": "application/json" },
    body: JSON.stringify({
      targets: [{ channel: "push", token: options.deviceToken, platform: "android" }],
      title: "Herald smoke test",
      body: "validate_only: FCM checks this message and delivers nothing",
      validate_only: true,
    }),
    signal: AbortSignal.timeout(30_000),
  });
  const accepted = await response.json().catch(() => ({})) as {
    status_url?: string;
    title?: string;
    detail?: string;
  };
  if (response.status !== 201 && response.status !== 202) {
    throw new StepFailed(
      `${url} answered ${response.status}: ${accepted.detail ?? accepted.title ?? "no detail"}`,
    );
  }
  if (!accepted.status_url) throw new StepFailed(`${url} gave no status_url`);
  const statusUrl = new URL(accepted.status_url, url).href;
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let last = "pending";
  while (Date.now() < deadline) {
    const status = await fetch(statusUrl, {
      headers: _headers(service),
      signal: AbortSignal.timeout(15_000),
    });
    const body = await status.json().catch(() => ({})) as {
      deliveries?: { status: string; last_error?: string | null }[];
    };
    if (status.status !== 200) throw new StepFailed(`${statusUrl} answered ${status.status}`);
    const delivery = body.deliveries?.[0];
    last = delivery?.status ?? "missing";
    if (last === "sent") {
      say(`smoke test: ${statusUrl} → sent (validate_only)`);
      return;
    }
    if (["failed", "dead", "expired", "cancelled"].includes(last)) {
      throw new StepFailed(
        `smoke test: the delivery ended ${last}: ${delivery?.last_error ?? "no error recorded"}`,
      );
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
  throw new StepFailed(`smoke test: the delivery was still ${last} after the timeout`);
}
