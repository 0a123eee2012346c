/**
 * Kong's acl plugin: consumer groups allowed or denied, as Kong 3.9.3 does it
 * (`kong/plugins/acl/handler.lua` (PRIORITY 950);
 * kong/schema/kong-3.9-behaviour.md, section 4).
 *
 * @module
 */
import { type Factory, kongError, list } from "./plugin.ts";

export const acl: Factory = (c) => ({
  access(x) {
    const allow = c.allow ? list(c.allow) : undefined;
    const deny = c.deny ? list(c.deny) : undefined;
    if (!x.consumer) {
      return x.credential
        ? kongError(x, 403, "You cannot consume this service")
        : kongError(x, 401, "Unauthorized");
    }
    const groups = x.consumer.groups;
    if (groups.length === 0 && allow) {
      return x.credential
        ? kongError(x, 403, "You cannot consume this service")
        : kongError(x, 401, "Unauthorized");
    }
    const blocked = allow
      ? !groups.some((g) => allow.includes(g))
      : groups.some((g) => deny!.includes(g));
    if (blocked) return kongError(x, 403, "You cannot consume this service");
    if (!c.hide_groups_header) x.upstream.set("x-consumer-groups", groups.join(", "));
    return undefined;
  },
});
