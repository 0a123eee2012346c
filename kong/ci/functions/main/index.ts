// The edge runtime's main service for the Kong CI job: `/<name>/…` runs
// Herald's function <name> in a user worker, as Supabase's own main service
// does (supabase/docker/volumes/functions/main/index.ts).
// deno-lint-ignore-file no-explicit-any
declare const EdgeRuntime: any;

Deno.serve(async (request: Request) => {
  const name = new URL(request.url).pathname.split("/")[1];
  if (!name || name.startsWith("_") || name === "main") {
    return Response.json({ msg: "missing function name in request" }, { status: 400 });
  }
  try {
    const worker = await EdgeRuntime.userWorkers.create({
      servicePath: `/home/deno/functions/herald/${name}`,
      memoryLimitMb: 256,
      workerTimeoutMs: 60_000,
      noModuleCache: false,
      importMapPath: "/home/deno/functions/deno.json",
      envVars: Object.entries(Deno.env.toObject()),
    });
    return await worker.fetch(request);
  } catch (error) {
    return Response.json({ msg: String(error) }, { status: 500 });
  }
});
