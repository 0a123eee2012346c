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
  /**
   * The next time a client sends `text` (e.g. `commit`), the proxy forwards it
   * and then drops that client at once: the server acts on it, and the
   * client never hears the answer. Resolves once it happened.
   */
  dropAfterClientSends(text: string): Promise<void>;
  /** Holds every byte in both directions, connections open: a frozen server (SIGSTOP). */
  freeze(): void;
  /** Lets the held bytes through. */
  thaw(): void;
  close(): Promise<void>;
}

/** Starts a proxy to `127.0.0.1:targetPort`. */
export function startTcpProxy(targetPort: number): TcpProxy {
  const open = new Set<Deno.Conn>();
  let trap: { text: string; sprung: () => void } | undefined;
  let frozen: { thawed: Promise<void>; thaw: () => void } | undefined;
  const unfrozen = () => frozen?.thawed;
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
    const decoder = new TextDecoder();
    // Set when the trap springs: the server's answers no longer reach the client.
    let muted = false;
    const upstream = async () => {
      const writer = server.writable.getWriter();
      try {
        for await (const chunk of client.readable) {
          const sprung = trap && decoder.decode(chunk).toLowerCase().includes(trap.text)
            ? trap.sprung
            : undefined;
          if (sprung) {
            trap = undefined;
            muted = true;
          }
          await unfrozen();
          await writer.write(chunk);
          if (sprung) {
            // Let the server act on it before the client goes.
            await new Promise((resolve) => setTimeout(resolve, 20));
            drop(client);
            sprung();
          }
        }
      } catch {
        // Either side went away.
      } finally {
        writer.releaseLock();
      }
    };
    const downstream = async () => {
      const writer = client.writable.getWriter();
      try {
        for await (const chunk of server.readable) {
          await unfrozen();
          if (!muted) await writer.write(chunk);
        }
      } catch {
        // Either side went away.
      } finally {
        writer.releaseLock();
      }
    };
    await Promise.all([upstream(), downstream()]);
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
    dropAfterClientSends(text) {
      return new Promise((sprung) => trap = { text: text.toLowerCase(), sprung });
    },
    freeze() {
      if (frozen) return;
      let thaw = () => {};
      const thawed = new Promise<void>((resolve) => thaw = resolve);
      frozen = { thawed, thaw };
    },
    thaw() {
      frozen?.thaw();
      frozen = undefined;
    },
    close: stop,
  };
}
