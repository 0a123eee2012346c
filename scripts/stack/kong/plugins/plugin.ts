/**
 * What every plugin of the local Kong shares: the exchange one request's
 * plugins see (Kong's ngx.ctx), Kong's two error shapes, and the
 * authentication plumbing of key-auth, jwt and hmac-auth (`anonymous`, the
 * consumer headers). Kong 3.9.3's behaviour, with file and line, is in
 * kong/schema/kong-3.9-behaviour.md, section 10.
 *
 * @module
 */
import type { Redis } from "ioredis";

export type Json = Record<string, unknown>;

/** A consumer and what authenticates as it. */
export interface Consumer {
  id: string;
  username: string;
  groups: string[];
}

/** What the plugins of one request share (Kong's ngx.ctx). */
export interface Exchange {
  request: Request;
  url: URL;
  /** Headers sent upstream; plugins add, change and remove. */
  upstream: Headers;
  clientIp: string;
  requestId: string;
  /** The body, read once when a plugin needs it (size limit, HMAC digest). */
  body(): Promise<Uint8Array<ArrayBuffer>>;
  consumer?: Consumer;
  /** The credential that authenticated the consumer; undefined when anonymous. */
  credential?: { id: string; identifier: string };
  /** Where the plugin applies: its own route and service ids (rate-limiting's key). */
  scope: { route: string; service: string };
  /** Response headers set during access (rate-limiting's), applied to whatever answers. */
  responseHeaders?: Headers;
}

/** One configured plugin. */
export interface Plugin {
  name: string;
  priority: number;
  /** Answers the request itself (an error, a preflight) or lets it through. */
  access?(x: Exchange): Promise<Response | undefined> | Response | undefined;
  /** Adds headers to the response, whoever produced it (Kong's header_filter). */
  headerFilter?(x: Exchange, headers: Headers): void;
}

/** What the plugins need from the gateway. */
export interface PluginContext {
  consumers: Map<string, Consumer>;
  /** Credentials by plugin: key → consumer, jwt key → secret, hmac username → secret. */
  keys: Map<string, { consumer: Consumer; id: string }>;
  jwtSecrets: Map<
    string,
    { consumer: Consumer; algorithm: string; secret?: string; publicKey?: string }
  >;
  hmacCredentials: Map<string, { consumer: Consumer; secret: string }>;
  redis(options: Json): Redis;
  now(): number;
}

/** Builds one plugin's handlers from its (validated, defaults filled) config. */
export type Factory = (config: Json, context: PluginContext) => Omit<Plugin, "name" | "priority">;

export const SERVER = "kong/3.9.3";

/**
 * Kong's templated error (kong.response.error): the JSON template with the
 * request id, byte for byte (the message is not JSON-escaped, as in Kong).
 */
export function kongError(
  x: Pick<Exchange, "requestId">,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  const body = `{\n  "message":"${message}",\n  "request_id":"${x.requestId}"\n}`;
  return new Response(body, {
    status,
    headers: { "content-type": "application/json; charset=utf-8", server: SERVER, ...headers },
  });
}

/** Kong's compact exit (kong.response.exit with a table): jwt's errors, no request id. */
export function kongExit(
  status: number,
  body: Json,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", server: SERVER, ...headers },
  });
}

/** A config field that is a list, or none. */
export const list = (value: unknown) => (Array.isArray(value) ? value as string[] : []);

/**
 * An auth plugin's access phase: skipped for preflights when `run_on_preflight`
 * is false (hmac-auth has no such option and always runs), and in Kong's
 * "logical OR" mode when `anonymous` is set.
 */
export function authenticating(
  c: Json,
  context: PluginContext,
  authenticate: (x: Exchange) => Promise<Response | undefined> | Response | undefined,
): (x: Exchange) => Promise<Response | undefined> | Response | undefined {
  return (x) => {
    if (c.run_on_preflight === false && x.request.method === "OPTIONS") return undefined;
    if (c.anonymous) return logicalOr(x, c.anonymous as string, context, () => authenticate(x));
    return authenticate(x);
  };
}

/** Kong's "logical OR": an earlier plugin's credential wins; any failure becomes the anonymous consumer. */
async function logicalOr(
  x: Exchange,
  anonymous: string,
  context: PluginContext,
  authenticate: () => Promise<Response | undefined> | Response | undefined,
): Promise<Response | undefined> {
  if (x.credential) return undefined;
  const failed = await authenticate();
  if (!failed) return undefined;
  const consumer = context.consumers.get(anonymous);
  if (!consumer) return kongError(x, 500, "An unexpected error occurred");
  x.consumer = consumer;
  x.credential = undefined;
  x.upstream.set("x-consumer-id", consumer.id);
  x.upstream.set("x-consumer-username", consumer.username);
  x.upstream.delete("x-credential-identifier");
  x.upstream.set("x-anonymous-consumer", "true");
  return undefined;
}

export function setConsumer(
  x: Exchange,
  consumer: Consumer,
  credential: { id: string; identifier: string },
) {
  x.consumer = consumer;
  x.credential = credential;
  x.upstream.set("x-consumer-id", consumer.id);
  x.upstream.set("x-consumer-username", consumer.username);
  x.upstream.delete("x-consumer-custom-id");
  x.upstream.set("x-credential-identifier", credential.identifier);
  x.upstream.delete("x-anonymous-consumer");
}
