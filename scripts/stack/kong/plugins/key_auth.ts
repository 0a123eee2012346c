/**
 * Kong's key-auth plugin: API keys in a header or the query, as Kong 3.9.3
 * does it (`kong/plugins/key-auth/handler.lua` (PRIORITY 1250);
 * kong/schema/kong-3.9-behaviour.md, section 1).
 *
 * @module
 */
import {
  authenticating,
  type Exchange,
  type Factory,
  kongError,
  list,
  setConsumer,
} from "./plugin.ts";

export const keyAuth: Factory = (c, context) => {
  const realm = c.realm ? `Key realm="${c.realm}"` : "Key";
  const authenticate = (x: Exchange): Response | undefined => {
    let key: string | undefined;
    for (const name of list(c.key_names)) {
      const fromHeader = c.key_in_header ? x.request.headers.get(name) : null;
      const fromQuery = c.key_in_query ? x.url.searchParams.getAll(name) : [];
      if (fromHeader !== null) {
        // Two headers of one name arrive joined by ", ": Kong sees a table.
        if (fromHeader.includes(", ")) {
          return kongError(x, 401, "Duplicate API key found", { "www-authenticate": realm });
        }
        key = fromHeader;
      } else if (fromQuery.length > 1) {
        return kongError(x, 401, "Duplicate API key found", { "www-authenticate": realm });
      } else if (fromQuery.length === 1) key = fromQuery[0];
      if (key !== undefined) {
        if (c.hide_credentials) {
          x.upstream.delete(name);
          x.url.searchParams.delete(name);
        }
        break;
      }
    }
    if (!key) {
      return kongError(x, 401, "No API key found in request", { "www-authenticate": realm });
    }
    const credential = context.keys.get(key);
    if (!credential) return kongError(x, 401, "Unauthorized", { "www-authenticate": realm });
    setConsumer(x, credential.consumer, { id: credential.id, identifier: credential.id });
    return undefined;
  };
  return { access: authenticating(c, context, authenticate) };
};
