/**
 * Builds a dispatcher's providers and breaker from configuration: shared by
 * the dispatch function and the long-running worker.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Sql } from "../db/sessions.ts";
import type { Logger } from "../log.ts";
import { createEmailProvider } from "../providers/email.ts";
import { createFcmSender } from "../providers/fcm.ts";
import { createAccessTokenSource } from "../providers/google_access_token.ts";
import type { Providers } from "../providers/provider.ts";
import { createPushProvider } from "../providers/push.ts";
import { createWebhookProvider } from "../providers/webhook.ts";
import { countBreakerOpening } from "../metrics/request_counts.ts";
import { createRedis } from "../redis/client.ts";
import { createBreaker } from "../resilience/breaker.ts";
import type { DispatcherDeps } from "./dispatcher.ts";
import { createSendSlots } from "./send_slots.ts";

/**
 * Wires a dispatcher. Channels without configuration get no provider (their
 * deliveries wait), and that is logged once here.
 */
export function createDispatcherDeps(config: Config, sql: Sql, log: Logger): DispatcherDeps {
  const providers: Providers = {
    webhook: createWebhookProvider(config.webhooks),
  };
  const unconfigured: DispatcherDeps["unconfigured"] = {};
  if (config.fcm?.serviceAccount) {
    const { serviceAccount, apiUrl } = config.fcm;
    providers.push = createPushProvider({
      projectId: serviceAccount.project_id,
      sender: createFcmSender({
        projectId: serviceAccount.project_id,
        tokens: createAccessTokenSource({ serviceAccount }),
        baseUrl: apiUrl,
      }),
    });
  } else if (config.fcm?.problem) {
    unconfigured.push = { code: "FCM_MISCONFIGURED", reason: config.fcm.problem };
    log("error", "push deliveries wait until FCM_SERVICE_ACCOUNT is fixed", {
      problem: config.fcm.problem,
    });
  } else {
    log("warn", "FCM_SERVICE_ACCOUNT is not set: push deliveries wait for it");
  }
  if (config.email) {
    providers.email = createEmailProvider({
      baseUrl: config.email.apiUrl,
      apiKey: config.email.apiKey,
      from: config.email.from,
    });
  } else {
    log("warn", "EMAIL_API_KEY or HERALD_EMAIL_FROM is not set: e-mail deliveries wait for them");
  }
  if (!config.redis) {
    log("warn", "UPSTASH_REDIS_REST_URL is not set: each process keeps its own circuit breakers");
  }
  const redis = config.redis ? createRedis(config.redis) : undefined;
  const breaker = createBreaker({
    redis,
    ...config.breaker,
    onStateChange: (target, state) => {
      log("warn", `circuit breaker ${state}`, { target });
      if (state === "open" && redis) {
        void countBreakerOpening(redis, target, config.build.instance);
      }
    },
    onDegraded: (error) =>
      error
        ? log("error", "Redis unreachable: circuit breakers are per-process until it returns", {
          error: error.message,
        })
        : log("info", "Redis reachable again: circuit breakers are shared"),
  });
  const { rounds: _rounds, ...dispatch } = config.dispatch;
  // One set of slots per process: its rounds share them, and Redis shares the limit with others.
  const slots = createSendSlots({
    limit: dispatch.concurrency,
    redis,
    onDegraded: (error) =>
      error
        ? log("error", "Redis unreachable: send limits are per-process until it returns", {
          error: error.message,
        })
        : log("info", "Redis reachable again: send limits are shared"),
  });
  return {
    sql,
    providers,
    unconfigured,
    breaker,
    slots,
    log,
    instance: config.build.instance,
    ...dispatch,
  };
}
