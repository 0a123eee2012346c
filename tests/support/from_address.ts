/**
 * Requests from a loopback address of the test's choosing: Kong keys rate
 * limits and `ip-restriction` on the client address, and on Linux every
 * 127.0.0.0/8 address is this machine, so a test can be a client of its own.
 * node:http, because `fetch` cannot bind a local address.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import http from "node:http";

/** A random loopback address other than 127.0.0.1. */
export function loopbackAddress(): string {
  const octet = () => 2 + Math.floor(Math.random() * 250);
  return `127.${octet()}.${octet()}.${octet()}`;
}

/**
 * `GET url` (or `method`) from `address` (`undefined`: the default address),
 * read whole into a `Response`.
 */
export function fromAddress(
  address: string | undefined,
  url: string,
  headers: Record<string, string>,
  method = "GET",
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers, localAddress: address }, (incoming) => {
      const chunks: Uint8Array[] = [];
      incoming.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      incoming.on("end", () => {
        const out = new Headers();
        for (const [name, value] of Object.entries(incoming.headers)) {
          if (value !== undefined) out.set(name, Array.isArray(value) ? value.join(", ") : value);
        }
        resolve(new Response(Buffer.concat(chunks), { status: incoming.statusCode, headers: out }));
      });
      incoming.on("error", reject);
    });
    request.on("error", reject);
    request.end();
  });
}
