/**
 * A stand-in for Kong 3.9's admin API in DB-less mode, as far as the
 * deployment manager uses it: `POST /config` (the declarative config as the
 * `config` field, YAML or JSON text; 201 with the entities, 400 on a config
 * it cannot parse) and `GET /upstreams/{name}/targets` from the last config
 * loaded. Every config posted is kept, parsed, in `posted`.
 *
 * @module
 */
import { parse } from "yaml";

/** A running stand-in. */
export interface KongAdmin {
  url: string;
  /** The configs loaded, oldest first. */
  posted: Record<string, unknown>[];
  /** The canary target's weight in each config loaded (`herald-functions`' second target). */
  weights(): { stable: number; canary: number }[];
  close(): Promise<void>;
}

type Upstream = { name: string; targets?: { target: string; weight: number }[] };

/** Starts the stand-in on a free loopback port. */
export function startKongAdmin(): KongAdmin {
  const posted: Record<string, unknown>[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (req.method === "POST" && url.pathname === "/config") {
      const body = await req.json().catch(() => undefined) as { config?: unknown } | undefined;
      let config: Record<string, unknown>;
      try {
        if (typeof body?.config !== "string") throw new Error("expected a config string");
        config = parse(body.config);
        if (config?._format_version !== "3.0") throw new Error("_format_version must be 3.0");
      } catch (error) {
        return Response.json({
          name: "invalid declarative configuration",
          code: 14,
          message: `declarative config is invalid: ${(error as Error).message}`,
        }, { status: 400 });
      }
      posted.push(config);
      return Response.json(config, { status: 201 });
    }
    const targets = url.pathname.match(/^\/upstreams\/([^/]+)\/targets$/);
    if (req.method === "GET" && targets) {
      const upstream = ((posted.at(-1)?.upstreams ?? []) as Upstream[])
        .find((u) => u.name === targets[1]);
      if (!upstream) return Response.json({ message: "Not found" }, { status: 404 });
      return Response.json({ data: upstream.targets ?? [], next: null });
    }
    return Response.json({ message: "Not found" }, { status: 404 });
  });
  const port = (server.addr as Deno.NetAddr).port;
  return {
    url: `http://127.0.0.1:${port}`,
    posted,
    weights: () =>
      posted.map((c) => {
        const up = (c.upstreams as Upstream[]).find((u) => u.name === "herald-functions")!;
        return { stable: up.targets![0].weight, canary: up.targets![1].weight };
      }),
    close: () => server.shutdown(),
  };
}
