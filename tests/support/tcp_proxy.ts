/**
 * A loopback TCP proxy in front of a real server (Postgres), which a test
 * can cut — every open connection dropped and the port closed, so new
 * connections are refused as by a stopped server — and restore on the same
 * port: an outage of the real component without stopping it for other tests.
 *
 * @module
 */

/** A running proxy. */
export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  port: number;
  /** Drops every connection and refuses new ones until {@linkcode TcpProxy.restore}. */
  cut(): Promise<void>;
  restore(): void;
  close(): Promise<void>;
}

/** Starts a proxy to `127.0.0.1:targetPort`. */
export function startTcpProxy(targetPort: number): TcpProxy {
  const open = new Set<Deno.Conn>();
  const pipes = new Set<Promise<void>>();
  const drop = (conn: Deno.Conn) => {
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // Already closed by the other side.
    }
  };
  const pipe = async (client: Deno.Conn) => {
    let server: Deno.Conn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      client.close();
      return;
    }
    open.add(client);
    open.add(server);
    await Promise.all([
      client.readable.pipeTo(server.writable).catch(() => {}),
      server.readable.pipeTo(client.writable).catch(() => {}),
    ]);
    drop(client);
    drop(server);
  };
  const serve = (port: number) => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    const accepting = (async () => {
      try {
        for await (const client of listener) {
          const piping = pipe(client);
          pipes.add(piping);
          piping.finally(() => pipes.delete(piping));
        }
      } catch {
        // The listener was closed by cut() or close().
      }
    })();
    return { listener, accepting };
  };
  let serving: ReturnType<typeof serve> | undefined = serve(0);
  const port = (serving.listener.addr as Deno.NetAddr).port;
  const stop = async () => {
    if (!serving) return;
    serving.listener.close();
    await serving.accepting;
    serving = undefined;
    for (const conn of [...open]) drop(conn);
    await Promise.all([...pipes]);
  };
  return {
    port,
    cut: stop,
    restore() {
      serving ??= serve(port);
    },
    close: stop,
  };
}
