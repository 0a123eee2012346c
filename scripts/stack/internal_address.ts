/**
 * The local stack's one internal address, and the check its private ports
 * make with it.
 *
 * @module
 */

/**
 * The local stack's one internal address (its Kong's `HERALD_INTERNAL_CIDR`):
 * every 127.0.0.0/8 address reaches a socket bound to 127.0.0.1, so the doors
 * behind Kong refuse the other ones themselves, as Kong's `ip-restriction`
 * does, rather than be a way around it.
 */
export const INTERNAL_ADDRESS = "127.0.0.1";

/** A 403 for a client outside {@linkcode INTERNAL_ADDRESS}; undefined for one inside. */
export function refuseOutsider(info: Deno.ServeHandlerInfo): Response | undefined {
  const address = (info.remoteAddr as Deno.NetAddr).hostname;
  if (address === INTERNAL_ADDRESS) return undefined;
  return Response.json(
    {
      message: `only ${INTERNAL_ADDRESS} may call the local stack's private ports, not ${address}`,
    },
    { status: 403 },
  );
}
