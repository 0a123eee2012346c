/**
 * Decides whether Herald may send a request to a customer-supplied URL: only
 * `http:`/`https:`, no credentials in the URL, and every address the host
 * resolves to must be public — no loopback, private, link-local (cloud
 * metadata at 169.254.169.254), CGNAT, multicast or reserved space, in IPv4 or
 * IPv6, including IPv4 embedded in IPv6 (mapped, NAT64, 6to4).
 *
 * What remains (issue 23 finding 5): the check and the connection resolve
 * separately. The check asks the name servers of `/etc/resolv.conf` directly
 * (`Deno.resolveDns`); `fetch` then asks the system resolver, which also
 * reads `/etc/hosts` and resolves again later. So (1) a hostile name server
 * can answer a public address to the check and a private one to `fetch` (DNS
 * rebinding), and (2) a name that public DNS maps to a public address but the
 * host's `/etc/hosts` maps elsewhere passes. Deno's `fetch` cannot be pinned
 * to a checked address on the edge runtime (`Deno.createHttpClient` is
 * unstable there, and `fetch` replaces a `Host` header with the URL's host,
 * so even an `http:` URL cannot be sent to the address under its name: a test
 * checks that), so the guard narrows the window rather than closing it:
 * `localhost`, `*.localhost`, metadata and private-use names are refused by
 * name before any lookup, IP literals are checked as given, redirects are
 * never followed (a rebound name gets one request and no more), and a lookup
 * that fails or times out refuses rather than trusts. Closing it fully takes
 * an egress proxy that applies the same rules at connect time.
 *
 * @module
 */

/**
 * Resolves a hostname to all its A and AAAA addresses.
 *
 * @returns every address; empty when the name has none
 * @throws when the lookup itself failed (time-out, refused, no resolver)
 */
export type Resolve = (hostname: string, signal?: AbortSignal) => Promise<string[]>;

/** Options for {@linkcode checkDestination}. */
export interface DestinationOptions {
  /**
   * Hosts that skip the address check: `host` for any port, `host:port` for
   * that port only (e.g. the local stack's `127.0.0.1:54329`), normalised
   * with {@linkcode normaliseAllowedHost}.
   * @default an empty set
   */
  allowHosts?: ReadonlySet<string>;
  /**
   * Looks up names. Without one, only IP literals and allow-listed hosts pass:
   * a name that cannot be checked is refused, never trusted.
   * @default none
   */
  resolve?: Resolve;
  /** Bounds the lookup. */
  signal?: AbortSignal;
}

/**
 * The guard's verdict on one URL: `allowed` (with the addresses checked, none
 * when allow-listed), `blocked` (never send; the reason names the host and, when
 * one was at fault, the address) or `unresolved` (the name may resolve later).
 */
export type Destination =
  | { kind: "allowed"; url: URL; addresses: string[] }
  | { kind: "blocked"; reason: string }
  | { kind: "unresolved"; reason: string };

/** IPv4 ranges that are not reachable on the public internet (IANA special-purpose registry). */
const NON_PUBLIC_IPV4: readonly (readonly [network: string, prefix: number, label: string])[] = [
  ["0.0.0.0", 8, "this network"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "shared address space, CGNAT"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local, cloud metadata"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "IETF protocol assignments"],
  ["192.0.2.0", 24, "documentation"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["198.51.100.0", 24, "documentation"],
  ["203.0.113.0", 24, "documentation"],
  ["224.0.0.0", 4, "multicast"],
  // Includes the limited broadcast address 255.255.255.255.
  ["240.0.0.0", 4, "reserved"],
];

/**
 * IPv6 ranges that are not public. Anything outside 2000::/3 (global unicast)
 * is refused as well; these entries only give the common cases their name.
 */
const NON_PUBLIC_IPV6: readonly (readonly [network: string, prefix: number, label: string])[] = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["::", 96, "IPv4-compatible, deprecated"],
  ["64:ff9b:1::", 48, "local-use NAT64"],
  ["100::", 64, "discard-only"],
  ["2001:db8::", 32, "documentation"],
  ["fc00::", 7, "unique local"],
  ["fe80::", 10, "link-local"],
  ["fec0::", 10, "site-local, deprecated"],
  ["ff00::", 8, "multicast"],
];

/** IPv6 forms that carry an IPv4 address, judged by that address. */
const IPV4_IN_IPV6:
  readonly (readonly [network: string, prefix: number, shift: bigint, label: string])[] = [
    ["::ffff:0:0", 96, 0n, "IPv4-mapped"],
    ["64:ff9b::", 96, 0n, "NAT64"],
    ["2002::", 16, 80n, "6to4"],
  ];

/** Names of cloud metadata services (they answer on 169.254.169.254 inside the cloud). */
const METADATA_HOSTNAMES = new Set(["metadata.google.internal", "metadata.goog"]);

/** Suffixes that never name a public host (RFC 6761, RFC 6762, RFC 8375, ICANN `.internal`). */
const PRIVATE_SUFFIXES = [".localhost", ".internal", ".local", ".home.arpa"];

/**
 * Whether `ip` is a public unicast address.
 *
 * @param ip an IPv4 dotted quad or an IPv6 address, without brackets
 * @returns false for non-public addresses and for anything that is not an IP address
 *
 * @example
 * ```ts
 * isPublicAddress("8.8.8.8"); // true
 * isPublicAddress("::ffff:169.254.169.254"); // false
 * ```
 */
export function isPublicAddress(ip: string): boolean {
  return _nonPublicRange(ip) === undefined;
}

/**
 * Canonical form of a host for comparison: lower case, no IPv6 brackets, no
 * trailing dot, IP literals in the form the URL parser writes them.
 *
 * @throws {RangeError} when `host` is not a valid host name or IP literal
 */
export function normaliseHost(host: string): string {
  const bare = host.trim().replace(/^\[(.*)\]$/, "$1");
  const literal = bare.includes(":") ? `[${bare}]` : bare;
  let hostname: string;
  try {
    hostname = new URL(`http://${literal}/`).hostname;
  } catch {
    throw new RangeError(`Cannot use host: '${host}' is not a valid host name or IP address`);
  }
  return _bareHostname(hostname);
}

/**
 * Canonical form of an allow-list entry: a host ({@linkcode normaliseHost}) or
 * `host:port` (IPv6 in brackets, `[::1]:8080`), the port without leading zeros.
 *
 * @throws {RangeError} when `entry` is neither
 */
export function normaliseAllowedHost(entry: string): string {
  const withPort = entry.trim().match(/^(\[[^\]]+\]|[^:\[\]]+):(\d{1,5})$/);
  if (!withPort) return normaliseHost(entry);
  const port = Number(withPort[2]);
  if (port < 1 || port > 65535) {
    throw new RangeError(`Cannot use host: '${entry}' has a port outside 1–65535`);
  }
  const host = normaliseHost(withPort[1]);
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * What can be told about a URL without DNS: the scheme, credentials, IP
 * literals and reserved names decide `allowed` or `blocked`; any other host is
 * a `name` that must be resolved. The notify API and the `webhook_endpoints`
 * trigger refuse at registration what this blocks; the send-time check adds
 * the lookup.
 */
export function judgeLiterally(
  url: string | URL,
  allowHosts?: ReadonlySet<string>,
): Destination | { kind: "name"; url: URL; host: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { kind: "blocked", reason: "the webhook URL is not a valid URL" };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { kind: "blocked", reason: `the scheme ${parsed.protocol} is not http: or https:` };
  }
  if (parsed.username || parsed.password) {
    return { kind: "blocked", reason: "the webhook URL carries credentials" };
  }
  const host = _bareHostname(parsed.hostname);
  const port = parsed.port || (parsed.protocol === "https:" ? "443" : "80");
  const hostPort = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  if (allowHosts?.has(host) || allowHosts?.has(hostPort)) {
    return { kind: "allowed", url: parsed, addresses: [] };
  }
  if (_isIpLiteral(host)) {
    const range = _nonPublicRange(host);
    return range === undefined
      ? { kind: "allowed", url: parsed, addresses: [host] }
      : { kind: "blocked", reason: `${host} is not a public address (${range})` };
  }
  const reserved = _reservedName(host);
  if (reserved) return { kind: "blocked", reason: `${host} is ${reserved}` };
  return { kind: "name", url: parsed, host };
}

/**
 * Checks a destination URL before anything is sent to it.
 *
 * @example
 * ```ts
 * const destination = await checkDestination("https://hooks.example.com/herald", {
 *   resolve: denoResolver(),
 * });
 * if (destination.kind === "allowed") await fetch(destination.url, { method: "POST" });
 * ```
 */
export async function checkDestination(
  url: string | URL,
  options: DestinationOptions = {},
): Promise<Destination> {
  const verdict = judgeLiterally(url, options.allowHosts);
  if (verdict.kind !== "name") return verdict;
  const { url: parsed, host } = verdict;
  if (!options.resolve) {
    return {
      kind: "blocked",
      reason: `${host} cannot be checked: no DNS resolver in this runtime (allow-list it)`,
    };
  }

  let addresses: string[];
  try {
    addresses = await options.resolve(host, options.signal);
  } catch (error) {
    return { kind: "unresolved", reason: `${host} did not resolve: ${(error as Error).message}` };
  }
  if (addresses.length === 0) {
    return { kind: "unresolved", reason: `${host} has no A or AAAA records` };
  }
  for (const address of addresses) {
    const range = _nonPublicRange(address);
    if (range !== undefined) {
      return {
        kind: "blocked",
        reason: `${host} resolves to ${address}, not a public address (${range})`,
      };
    }
  }
  return { kind: "allowed", url: parsed, addresses };
}

/**
 * The resolver built on `Deno.resolveDns` (A and AAAA in parallel).
 *
 * @returns undefined when the runtime has no `Deno.resolveDns`; callers then
 *   pass no resolver, and {@linkcode checkDestination} refuses names it cannot check
 */
export function denoResolver(): Resolve | undefined {
  const deno = (globalThis as { Deno?: Partial<typeof Deno> }).Deno;
  const resolveDns = deno?.resolveDns;
  if (typeof resolveDns !== "function") return undefined;
  const notFound = deno?.errors?.NotFound;
  return async (hostname, signal) => {
    const lookups = await Promise.allSettled([
      resolveDns(hostname, "A", { signal }),
      resolveDns(hostname, "AAAA", { signal }),
    ]);
    const addresses: string[] = [];
    for (const lookup of lookups) {
      if (lookup.status === "fulfilled") addresses.push(...lookup.value);
      // "No records of this type" is an answer; any other failure means we did not
      // see every address, so the name must not pass.
      else if (!(notFound && lookup.reason instanceof notFound)) throw lookup.reason;
    }
    return addresses;
  };
}

/** Why `host` (a name, not an IP literal) is never a public destination, if it is not. */
function _reservedName(host: string): string | undefined {
  if (host === "localhost" || host.endsWith(".localhost")) return "a loopback name";
  if (METADATA_HOSTNAMES.has(host)) return "a cloud metadata endpoint";
  if (PRIVATE_SUFFIXES.some((suffix) => host.endsWith(suffix))) return "a private-use name";
  // A single label ("metadata", "redis") is completed with the local search domains.
  if (!host.includes(".")) return "a single-label name, resolved only inside a private network";
  return undefined;
}

/** The name of the non-public range `ip` is in; undefined when `ip` is public. */
function _nonPublicRange(ip: string): string | undefined {
  const v4 = _parseIPv4(ip);
  if (v4 !== undefined) return _nonPublicIPv4Range(v4);
  const v6 = _parseIPv6(ip);
  if (v6 === undefined) return "malformed";
  for (const [network, prefix, shift, label] of IPV4_IN_IPV6) {
    if (_inIPv6Range(v6, network, prefix)) {
      const embedded = Number((v6 >> shift) & 0xffff_ffffn);
      const range = _nonPublicIPv4Range(embedded);
      return range === undefined ? undefined : `${label} ${_formatIPv4(embedded)}: ${range}`;
    }
  }
  for (const [network, prefix, label] of NON_PUBLIC_IPV6) {
    if (_inIPv6Range(v6, network, prefix)) return label;
  }
  return v6 >> 125n === 1n ? undefined : "non-global IPv6";
}

function _nonPublicIPv4Range(ip: number): string | undefined {
  for (const [network, prefix, label] of NON_PUBLIC_IPV4) {
    const mask = prefix === 0 ? 0 : (0xffff_ffff << (32 - prefix)) >>> 0;
    if (((ip & mask) >>> 0) === _parseIPv4(network)) return label;
  }
  return undefined;
}

function _inIPv6Range(ip: bigint, network: string, prefix: number): boolean {
  const shift = BigInt(128 - prefix);
  return ip >> shift === _parseIPv6(network)! >> shift;
}

/** Strict dotted quad (no octal-looking leading zeros) as an unsigned 32-bit number. */
function _parseIPv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return undefined;
    value = value * 256 + Number(part);
  }
  return value;
}

/** An IPv6 address (with or without a dotted IPv4 tail) as a 128-bit number. */
function _parseIPv6(text: string): bigint | undefined {
  let groups = text;
  const lastColon = groups.lastIndexOf(":");
  if (lastColon === -1) return undefined;
  const tail = groups.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = _parseIPv4(tail);
    if (v4 === undefined) return undefined;
    groups = `${groups.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${
      (v4 & 0xffff).toString(16)
    }`;
  }
  const halves = groups.split("::");
  if (halves.length > 2) return undefined;
  const split = (half: string) => (half === "" ? [] : half.split(":"));
  const head = split(halves[0]);
  const rest = halves.length === 2 ? split(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let value = 0n;
  for (const group of [...head, ...Array(missing).fill("0"), ...rest]) {
    if (!/^[0-9a-f]{1,4}$/i.test(group)) return undefined;
    value = (value << 16n) | BigInt(parseInt(group, 16));
  }
  return value;
}

function _formatIPv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff].join(".");
}

function _isIpLiteral(host: string): boolean {
  return _parseIPv4(host) !== undefined || _parseIPv6(host) !== undefined;
}

/** Hostname without IPv6 brackets or a trailing root dot. */
function _bareHostname(hostname: string): string {
  return hostname.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "").toLowerCase();
}
