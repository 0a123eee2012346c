/**
 * A stand-in for the Supabase Management API (`api.supabase.com/v1`), as far
 * as the real Supabase CLI (2.117.0) calls it when Herald deploys: the CLI is
 * pointed here with a profile file ({@linkcode writeProfile}) and runs for
 * real. Shapes follow the CLI's generated client (supabase/cli
 * `apps/cli-go/pkg/api/types.gen.go`) and the requests it was seen sending
 * (`../shared/reference/supabase-cli-2.117.0.md`):
 *
 * - `GET /v1/projects/{ref}`, `GET …/api-keys`, `GET …/config/database/pooler`
 *   (`link`); `GET …/config/storage` answers 404, which the CLI tolerates.
 * - `POST …/functions/deploy?slug=S[&bundleOnly=true]`, multipart: a
 *   `metadata` part and `file` parts named by their path. With `bundleOnly`
 *   the upload is staged, not served, until one `PUT …/functions` activates
 *   every staged function at once (all or nothing, as `apps/cli-go/pkg/function/deploy.go`
 *   relies on); without it the function is live at once.
 * - `GET …/functions` (FunctionResponse[]), `GET|DELETE …/functions/{slug}`,
 *   `GET …/functions/{slug}/body` (multipart back: `metadata`
 *   `{deno2_entrypoint_path}` and the files by the paths they were uploaded as).
 * - `POST|GET …/secrets`; `POST …/database/query` runs `{query}` on the
 *   project's database for real.
 *
 * Every request needs `Authorization: Bearer sbp_…` (401 otherwise) and is
 * recorded (`GET /_control/requests`); `POST /_control/reset` forgets every
 * project's functions and secrets too. `POST /_control/fail`
 * `{ method, path, status, body?, times? }` makes the next `times` (1)
 * requests whose `METHOD path?query` matches the regular expression `path`
 * fail with `status`: the way a test breaks one chosen call.
 *
 * Request bodies are read as text: function sources are text, which is all
 * Herald uploads.
 *
 * @module
 */
import postgres from "postgres";
import { type Fake, FakeControl, serveFake } from "./control.ts";

/** A project the stand-in knows: its ref and, for `database/query`, its database. */
export interface ProjectSpec {
  ref: string;
  dbUrl?: string;
}

/** One uploaded file of a function. */
export interface FunctionFile {
  name: string;
  content: string;
}

/** A function as stored: what is served, and what is staged by a `bundleOnly` upload. */
interface StoredFunction {
  id: string;
  slug: string;
  name: string;
  version: number;
  created_at: number;
  updated_at: number;
  verify_jwt: boolean;
  entrypoint_path: string;
  import_map_path: string | null;
  ezbr_sha256: string;
  files: FunctionFile[];
  /** Present while an upload with `bundleOnly` waits for the bulk update. */
  staged?: Omit<StoredFunction, "staged">;
}

/** The running stand-in. */
export interface ManagementApi extends Fake {
  /** The live (served) files of a function, or undefined. */
  liveFiles(ref: string, slug: string): FunctionFile[] | undefined;
  /** Live functions of a project as the list endpoint answers them. */
  functions(ref: string): Record<string, unknown>[];
  /** Secrets set on a project. */
  secrets(ref: string): Map<string, string>;
}

/** Host names the profile gives the CLI (never resolved: the tests never use `--linked` databases). */
export const PROJECT_HOST = "herald-management.test";

/** Writes a CLI profile (YAML) that points the CLI at `apiUrl`; returns its path. */
export async function writeProfile(dir: string, apiUrl: string): Promise<string> {
  const path = `${dir}/supabase-profile.yaml`;
  await Deno.writeTextFile(
    path,
    [
      "name: herald-stand-in",
      `api_url: ${apiUrl}`,
      `dashboard_url: ${apiUrl}/dashboard`,
      `project_host: ${PROJECT_HOST}`,
      "",
    ].join("\n"),
  );
  return path;
}

const ACCESS_TOKEN = /^Bearer sbp_[0-9a-f]{40}$/;

interface Failure {
  method: string;
  path: RegExp;
  status: number;
  body: string;
  times: number;
}

/** Starts the stand-in on a free loopback port. */
export function startManagementApi(projects: ProjectSpec[]): ManagementApi {
  const control = new FakeControl();
  const state = new Map(
    projects.map((p) => [p.ref, {
      spec: p,
      functions: new Map<string, StoredFunction>(),
      secrets: new Map<string, string>(),
    }]),
  );
  let failures: Failure[] = [];
  control.onReset = () => {
    failures = [];
    for (const project of state.values()) {
      project.functions.clear();
      project.secrets.clear();
    }
  };
  control.routes.set("POST /_control/fail", async (request) => {
    const body = await request.json().catch(() => undefined) as Record<string, unknown>;
    if (typeof body?.path !== "string" || !Number.isInteger(body?.status)) {
      return Response.json({ error: "want {method?, path, status, body?, times?}" }, {
        status: 400,
      });
    }
    failures.push({
      method: String(body.method ?? ".*"),
      path: new RegExp(body.path),
      status: body.status as number,
      body: typeof body.body === "string"
        ? body.body
        : JSON.stringify(body.body ?? { message: "stand-in failure" }),
      times: Number(body.times ?? 1),
    });
    return new Response(null, { status: 204 });
  });

  const fake = serveFake({
    port: 0,
    control,
    handler: async ({ request, url, text, json }) => {
      const target = `${url.pathname}${url.search}`;
      const failure = failures.find((f) =>
        f.times > 0 && new RegExp(`^${f.method}$`).test(request.method) && f.path.test(target)
      );
      if (failure) {
        failure.times--;
        return new Response(failure.body, {
          status: failure.status,
          headers: { "content-type": "application/json" },
        });
      }
      if (!ACCESS_TOKEN.test(request.headers.get("authorization") ?? "")) {
        return Response.json({ message: "Unauthorized" }, { status: 401 });
      }
      const m = url.pathname.match(/^\/v1\/projects\/([a-z0-9]{20})(\/.*)?$/);
      const project = m ? state.get(m[1]) : undefined;
      if (!m || !project) return Response.json({ message: "Not Found" }, { status: 404 });
      const ref = m[1];
      const route = `${request.method} ${m[2] ?? ""}`;
      const fn = (slug: string) => project.functions.get(slug);

      if (route === "GET ") {
        return Response.json({
          id: ref,
          ref,
          name: ref,
          organization_id: "herald-org",
          organization_slug: "herald-org",
          region: "eu-central-1",
          created_at: "2026-11-22T14:00:00Z",
          status: "ACTIVE_HEALTHY",
          database: {
            host: `db.${ref}.${PROJECT_HOST}`,
            version: "15.8.1.085",
            postgres_engine: "15",
            release_channel: "ga",
          },
        });
      }
      if (route === "GET /api-keys") {
        return Response.json([
          { name: "anon", api_key: `anon-key-of-${ref}`, type: "legacy" },
          { name: "service_role", api_key: `service-role-key-of-${ref}`, type: "legacy" },
        ]);
      }
      if (route === "GET /config/storage") {
        return Response.json({ message: "Not Found" }, { status: 404 });
      }
      if (route === "GET /config/database/pooler") {
        return Response.json([{
          database_type: "PRIMARY",
          identifier: ref,
          db_host: `aws-0-eu-central-1.pooler.${PROJECT_HOST}`,
          db_name: "postgres",
          db_port: 6543,
          db_user: `postgres.${ref}`,
          pool_mode: "transaction",
          default_pool_size: 15,
          max_client_conn: 200,
          is_using_scram_auth: true,
          connection_string:
            `postgresql://postgres.${ref}:[YOUR-PASSWORD]@aws-0-eu-central-1.pooler.${PROJECT_HOST}:6543/postgres`,
        }]);
      }
      if (route === "POST /functions/deploy") {
        const slug = url.searchParams.get("slug") ?? "";
        if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(slug)) {
          return Response.json({ message: "Invalid slug" }, { status: 400 });
        }
        let form: FormData;
        try {
          form = await new Request("http://upload", {
            method: "POST",
            headers: { "content-type": request.headers.get("content-type") ?? "" },
            body: text,
          }).formData();
        } catch (error) {
          return Response.json({ message: `bad multipart: ${(error as Error).message}` }, {
            status: 400,
          });
        }
        const metadata = JSON.parse(String(form.get("metadata") ?? "{}"));
        const files: FunctionFile[] = [];
        for (const part of form.getAll("file")) {
          if (part instanceof File) files.push({ name: part.name, content: await part.text() });
        }
        if (!metadata.entrypoint_path || !files.some((f) => f.name === metadata.entrypoint_path)) {
          return Response.json({ message: "entrypoint_path is not among the files" }, {
            status: 400,
          });
        }
        files.sort((a, b) => a.name.localeCompare(b.name));
        const old = fn(slug);
        const now = Date.now();
        const version: Omit<StoredFunction, "staged"> = {
          id: old?.id ?? crypto.randomUUID(),
          slug,
          name: metadata.name ?? slug,
          version: (old?.version ?? 0) + 1,
          created_at: old?.created_at ?? now,
          updated_at: now,
          verify_jwt: metadata.verify_jwt ?? true,
          entrypoint_path: metadata.entrypoint_path,
          import_map_path: metadata.import_map_path ?? null,
          ezbr_sha256: await _digest(files),
          files,
        };
        if (url.searchParams.get("bundleOnly") === "true") {
          project.functions.set(
            slug,
            old ? { ...old, staged: version } : { ...version, version: 0, staged: version },
          );
        } else {
          project.functions.set(slug, version);
        }
        return Response.json(_response(version), { status: 201 });
      }
      if (route === "PUT /functions") {
        const wanted = Array.isArray(json) ? json as { slug?: string }[] : undefined;
        if (!wanted?.length) return Response.json({ message: "want an array" }, { status: 400 });
        const missing = wanted.filter((w) => !w.slug || !fn(w.slug)?.staged);
        if (missing.length) {
          return Response.json({
            message: `no staged bundle for ${missing.map((w) => w.slug).join(", ")}`,
          }, { status: 400 });
        }
        const activated = wanted.map((w) => {
          const live = fn(w.slug!)!.staged!;
          project.functions.set(w.slug!, live);
          return _response(live);
        });
        return Response.json({ functions: activated });
      }
      if (route === "GET /functions") {
        return Response.json(_live(project.functions).map(_response));
      }
      const one = (m[2] ?? "").match(/^\/functions\/([^/]+)(\/body)?$/);
      if (one) {
        const live = fn(one[1]);
        if (!live || live.version === 0) {
          return Response.json({ message: "Function not found" }, { status: 404 });
        }
        if (request.method === "GET" && one[2]) return _body(live);
        if (request.method === "GET") return Response.json(_response(live));
        if (request.method === "DELETE") {
          project.functions.delete(one[1]);
          return Response.json({ message: "Successfully deleted function" });
        }
      }
      if (route === "POST /secrets") {
        for (const { name, value } of (json ?? []) as { name: string; value: string }[]) {
          project.secrets.set(name, value);
        }
        return new Response(null, { status: 201 });
      }
      if (route === "GET /secrets") {
        return Response.json(
          [...project.secrets.keys()].map((name) => ({ name, value: "<redacted>" })),
        );
      }
      if (route === "POST /database/query") {
        if (!project.spec.dbUrl) {
          return Response.json({ message: "no database" }, { status: 503 });
        }
        const sql = postgres(project.spec.dbUrl, { max: 1, onnotice: () => {} });
        try {
          const rows = await sql.unsafe(String((json as { query?: string })?.query ?? ""));
          return Response.json([...rows], { status: 201 });
        } catch (error) {
          return Response.json({ message: (error as Error).message }, { status: 400 });
        } finally {
          await sql.end();
        }
      }
      return Response.json({ message: `Not Found: ${route}` }, { status: 404 });
    },
  });
  return {
    ...fake,
    liveFiles: (ref, slug) => {
      const live = state.get(ref)?.functions.get(slug);
      return live && live.version > 0 ? live.files : undefined;
    },
    functions: (ref) => _live(state.get(ref)?.functions ?? new Map()).map(_response),
    secrets: (ref) => state.get(ref)?.secrets ?? new Map(),
  };
}

function _live(functions: Map<string, StoredFunction>): StoredFunction[] {
  return [...functions.values()].filter((f) => f.version > 0)
    .sort((a, b) => a.slug.localeCompare(b.slug));
}

/** A FunctionResponse: what list, get and deploy answer. */
function _response(f: Omit<StoredFunction, "staged">): Record<string, unknown> {
  return {
    id: f.id,
    slug: f.slug,
    name: f.name,
    status: "ACTIVE",
    version: f.version,
    created_at: f.created_at,
    updated_at: f.updated_at,
    verify_jwt: f.verify_jwt,
    import_map: f.import_map_path !== null,
    entrypoint_path: f.entrypoint_path,
    import_map_path: f.import_map_path ?? undefined,
    ezbr_sha256: f.ezbr_sha256,
  };
}

/** `GET …/functions/{slug}/body` with `Accept: multipart/form-data`. */
function _body(f: StoredFunction): Response {
  const form = new FormData();
  form.append("metadata", JSON.stringify({ deno2_entrypoint_path: f.entrypoint_path }));
  for (const file of f.files) form.append("file", new File([file.content], file.name));
  return new Response(form);
}

async function _digest(files: FunctionFile[]): Promise<string> {
  const bytes = new TextEncoder().encode(
    files.map((f) => `${f.name}\0${f.content}\0`).join(""),
  );
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...hash].map((b) => b.toString(16).padStart(2, "0")).join("");
}
