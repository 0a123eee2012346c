/**
 * Kong's ip-restriction plugin: client addresses allowed or denied, as Kong
 * 3.9.3 does it (`kong/plugins/ip-restriction/handler.lua` (PRIORITY 990);
 * kong/schema/kong-3.9-behaviour.md, section 7).
 *
 * @module
 */
import { type Factory, kongError, list } from "./plugin.ts";

export const ipRestriction: Factory = (c) => {
  const allow = list(c.allow).map(_cidr);
  const deny = list(c.deny).map(_cidr);
  return {
    access(x) {
      const ip = x.clientIp;
      const rejected = deny.some((m) => m(ip)) || (allow.length > 0 && !allow.some((m) => m(ip)));
      if (!rejected) return undefined;
      return kongError(
        x,
        Number(c.status ?? 403),
        String(c.message ?? `IP address not allowed: ${ip}`),
      );
    },
  };
};

/** An IPv4 address or CIDR range as a predicate (Herald's configuration uses IPv4). */
function _cidr(range: string): (ip: string) => boolean {
  const [base, bitsText] = range.split("/");
  const toInt = (ip: string) => ip.split(".").reduce((n, part) => (n << 8) + Number(part), 0) >>> 0;
  if (base.includes(":")) return (ip) => ip === base;
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  const network = toInt(base) & mask;
  return (ip) => !ip.includes(":") && (toInt(ip) & mask) === network;
}
