/**
 * Kong's request-size-limiting plugin: request bodies over a size refused, as
 * Kong 3.9.3 does it (`kong/plugins/request-size-limiting/handler.lua`
 * (PRIORITY 951); kong/schema/kong-3.9-behaviour.md, section 6).
 *
 * @module
 */
import { type Exchange, type Factory, kongError } from "./plugin.ts";

export const requestSizeLimiting: Factory = (c) => {
  const factor = { megabytes: 1024 * 1024, kilobytes: 1024, bytes: 1 }[String(c.size_unit)] ?? 1;
  const limit = Number(c.allowed_payload_size) * factor;
  const tooLarge = (x: Exchange) =>
    x.request.headers.get("expect")?.trim().toLowerCase() === "100-continue"
      ? kongError(x, 417, "Request size limit exceeded")
      : kongError(x, 413, "Request size limit exceeded");
  return {
    async access(x) {
      const length = x.request.headers.get("content-length");
      if (length !== null && /^\d+$/.test(length)) {
        return Number(length) > limit ? tooLarge(x) : undefined;
      }
      if (c.require_content_length && x.request.headers.get("transfer-encoding") !== "chunked") {
        return kongError(x, 411, "A valid Content-Length header is required");
      }
      return (await x.body()).length > limit ? tooLarge(x) : undefined;
    },
  };
};
