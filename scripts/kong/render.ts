/**
 * Renders `kong/kong.yml` for a Kong that is not self-hosted Supabase's: every
 * `$NAME` replaced from the environment, as that kong container's entrypoint
 * does (`eval "echo \"$(cat ~/temp.yml)\""`), but refusing unset names instead
 * of writing empty strings. Two render parameters on top:
 *
 * - the canary's share of traffic, 0…100 percent (`--canary-weight`, else
 *   `HERALD_CANARY_WEIGHT`, else 0): the canary target gets it, stable the rest;
 * - asymmetric Supabase Auth keys: with `SUPABASE_AUTH_JWT_PUBLIC_KEY` (PEM) set,
 *   the `authenticated` consumer's credential verifies user tokens with it
 *   (`SUPABASE_AUTH_JWT_ALGORITHM`, ES256 unless set) instead of the HS256 secret;
 * - hosted Supabase as the upstream (`--hosted <project-ref>`): each service
 *   goes to `https://<ref>.supabase.co/functions/v1/<name>` with the project's
 *   host name for TLS and `Host`, instead of the edge runtime's `/<name>`;
 *   one deployment, so no canary target.
 *
 * `npm run kong:render -- [--canary-weight N] [--out FILE]` writes outside the
 * repository (default `$TMPDIR/herald-kong/kong.yml`), never into it.
 *
 * @module
 */
import { createPublicKey } from "node:crypto";
import { parse, stringify } from "yaml";
import { publicKeyProblem } from "./validate.ts";

/** Where the template lives. */
export const KONG_TEMPLATE = new URL("../../kong/kong.yml", import.meta.url);

/** Options for {@linkcode renderKongConfig}. */
export interface RenderOptions {
  /** The canary's share, percent; overrides `HERALD_CANARY_WEIGHT`. */
  canaryWeight?: number;
  /** A hosted Supabase project's ref: its functions are the upstream. */
  hosted?: string;
}

/** A rendered configuration: the YAML text Kong reads, and the same parsed. */
export interface Rendered {
  text: string;
  config: Record<string, unknown>;
}

const NAME = /\$([A-Z_][A-Z0-9_]*)/g;

/** Every `$NAME` a template refers to. */
export function templateNames(template: string): string[] {
  return [...new Set([...template.matchAll(NAME)].map((m) => m[1]))].sort();
}

/**
 * Substitutes `env` into `template` and applies the render parameters.
 *
 * @throws {Error} naming every variable that is unset, or a canary weight outside 0…100
 */
export function renderKongConfig(
  template: string,
  env: Record<string, string | undefined>,
  options: RenderOptions = {},
): Rendered {
  const weight = options.canaryWeight ?? Number(env.HERALD_CANARY_WEIGHT ?? 0);
  if (!Number.isInteger(weight) || weight < 0 || weight > 100) {
    throw new Error(
      `Cannot render kong.yml: the canary weight must be a whole percent 0…100, got ${weight}`,
    );
  }
  const values: Record<string, string | undefined> = {
    ...env,
    HERALD_CANARY_WEIGHT: String(weight),
    HERALD_STABLE_WEIGHT: String(100 - weight),
  };
  // A hosted project is its own upstream, one deployment: no targets to name.
  const optional = options.hosted === undefined
    ? OPTIONAL
    : new Set([...OPTIONAL, "HERALD_FUNCTIONS_STABLE", "HERALD_FUNCTIONS_CANARY"]);
  const missing = templateNames(template).filter((name) => !values[name] && !optional.has(name));
  if (missing.length) {
    throw new Error(`Cannot render kong.yml: set ${missing.join(", ")} (see docs/SELF_HOSTING.md)`);
  }
  // Values are quoted as YAML strings where the template holds them as strings.
  const substituted = template.replace(NAME, (_, name: string) => _yamlScalar(values[name] ?? ""));
  const config = parse(substituted) as Record<string, unknown>;
  const publicKey = env.SUPABASE_AUTH_JWT_PUBLIC_KEY;
  if (publicKey) _asymmetricAuth(config, publicKey, env.SUPABASE_AUTH_JWT_ALGORITHM ?? "ES256");
  if (options.hosted !== undefined) _hosted(config, options.hosted);
  return { text: stringify(config, { lineWidth: 0 }), config };
}

/** Names that may be empty: a Redis without a password. */
const OPTIONAL = new Set(["HERALD_KONG_REDIS_PASSWORD"]);

/** A value as the YAML scalar it replaces: numbers stay numbers, anything else a quoted string. */
function _yamlScalar(value: string): string {
  return /^-?\d+$/.test(value) ? value : JSON.stringify(value);
}

function _hosted(config: Record<string, unknown>, ref: string) {
  if (!/^[a-z0-9]{20}$/.test(ref)) {
    throw new Error(
      `Cannot render kong.yml: '${ref}' is not a Supabase project ref (20 lowercase letters and digits)`,
    );
  }
  const host = `${ref}.supabase.co`;
  for (const upstream of (config.upstreams ?? []) as Record<string, unknown>[]) {
    upstream.host_header = host;
    upstream.targets = [{ target: `${host}:443`, weight: 100 }];
    const checks = upstream.healthchecks as { active?: Record<string, unknown> } | undefined;
    if (checks?.active) {
      checks.active.type = "https";
      checks.active.http_path = "/functions/v1/health";
    }
  }
  for (const service of (config.services ?? []) as Record<string, unknown>[]) {
    service.protocol = "https";
    service.port = 443;
    service.path = `/functions/v1${service.path}`;
  }
}

/** The curve each ES algorithm signs with, as node:crypto names it. */
const CURVES: Record<string, string> = {
  ES256: "prime256v1",
  ES384: "secp384r1",
  ES512: "secp521r1",
};

/**
 * Refuses a public key the algorithm cannot use. Kong checks RS/PS keys when
 * it loads the file but not ES keys, so a broken ES key would otherwise show
 * only as every user's token refused at request time.
 */
function _checkAuthKey(publicKey: string, algorithm: string) {
  const type = algorithm in CURVES ? "ec" : /^(RS|PS)(256|384|512)$/.test(algorithm) ? "rsa" : "";
  if (!type) {
    throw new Error(
      `Cannot render kong.yml: SUPABASE_AUTH_JWT_ALGORITHM '${algorithm}' is not ES256/384/512, RS256/384/512 or PS256/384/512`,
    );
  }
  const problem = publicKeyProblem(publicKey, type);
  const curve = !problem && type === "ec"
    ? createPublicKey(publicKey).asymmetricKeyDetails?.namedCurve
    : undefined;
  if (problem || (curve !== undefined && curve !== CURVES[algorithm])) {
    throw new Error(
      `Cannot render kong.yml: SUPABASE_AUTH_JWT_PUBLIC_KEY is not a ${algorithm} public key (${
        problem ?? `its curve is ${curve}`
      })`,
    );
  }
}

function _asymmetricAuth(config: Record<string, unknown>, publicKey: string, algorithm: string) {
  _checkAuthKey(publicKey, algorithm);
  const consumers = (config.consumers ?? []) as Record<string, unknown>[];
  const authenticated = consumers.find((c) => c.username === "authenticated");
  const secrets = authenticated?.jwt_secrets as Record<string, unknown>[] | undefined;
  if (!secrets?.[0]) throw new Error("Cannot render kong.yml: no 'authenticated' jwt credential");
  secrets[0] = { key: secrets[0].key, algorithm, rsa_public_key: publicKey };
}

if (import.meta.main) {
  const args = Deno.args;
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const repo = new URL("../../", import.meta.url).pathname;
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  const out = flag("--out") ?? `${tmp}/herald-kong/kong.yml`;
  const absolute = out.startsWith("/") ? out : `${Deno.cwd()}/${out}`;
  if (absolute.startsWith(repo) && !absolute.startsWith(`${repo}.data/`)) {
    console.error(
      `kong:render: refusing to write secrets into the repository (${out}); pass --out outside it`,
    );
    Deno.exit(2);
  }
  const weight = flag("--canary-weight");
  const hosted = flag("--hosted");
  try {
    const rendered = renderKongConfig(await Deno.readTextFile(KONG_TEMPLATE), Deno.env.toObject(), {
      ...(weight === undefined ? {} : { canaryWeight: Number(weight) }),
      ...(hosted === undefined ? {} : { hosted }),
    });
    await Deno.mkdir(absolute.slice(0, absolute.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(absolute, rendered.text, { mode: 0o600 });
    console.error(`kong:render: wrote ${absolute}`);
  } catch (error) {
    console.error(`kong:render: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
