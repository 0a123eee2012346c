/**
 * Installs the Debian packages the stack needs when they are missing.
 *
 * As root (a fresh CI machine, a container) we run apt-get ourselves; anyone
 * else gets one message naming exactly what to install.
 *
 * @module
 */
import { Supervisor } from "./supervisor.ts";

/** A requirement: present when `check` resolves true; otherwise install `packages`. */
export interface Requirement {
  what: string;
  packages: string[];
  check: () => Promise<boolean>;
}

const exists = async (path: string) => {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
};

const onPath = async (binary: string) =>
  (await new Deno.Command("sh", { args: ["-c", `command -v ${binary}`], stdout: "null" })
    .output()).success;

/** Postgres 15+ and redis-server: what `npm start` needs first. */
const SERVICE_REQUIREMENTS: Requirement[] = [
  {
    what: "PostgreSQL 15+",
    packages: ["postgresql"],
    check: async () => (await _postgresMajor()) !== undefined,
  },
  { what: "Redis", packages: ["redis-server"], check: () => onPath("redis-server") },
];

/** An extension package of the installed server's major version (Debian's `postgresql-<major>-…`). */
function _extension(what: string, name: string, control: string, major: number): Requirement {
  return {
    what,
    packages: [`postgresql-${major}-${name}`],
    check: () => exists(`/usr/share/postgresql/${major}/extension/${control}.control`),
  };
}

/**
 * What `npm start` needs: Postgres and Redis, then pg_cron for the server's
 * major version (the stack preloads it, so the migrations' jobs run as on
 * Supabase).
 */
export async function ensureServices(): Promise<void> {
  await ensure(SERVICE_REQUIREMENTS);
  await ensure([_extension("pg_cron", "cron", "pg_cron", (await _postgresMajor())!)]);
}

/** Prometheus and promtool: the alert rules' tests, and `npm run observe`. */
export const PROMETHEUS: Requirement = {
  what: "Prometheus (prometheus, promtool)",
  packages: ["prometheus"],
  check: async () => (await onPath("promtool")) && (await onPath("prometheus")),
};

/** Headless Chromium: the inbox's and the API reference's browser tests. */
export const CHROMIUM: Requirement = {
  what: "Chromium",
  packages: ["chromium"],
  check: () => onPath("chromium"),
};

/**
 * pgTAP, pg_prove and plpgsql_check (`supabase db lint`) for the server's
 * major version, and the tools the checks run: what `npm test` needs on top.
 */
export async function testRequirements(): Promise<Requirement[]> {
  const major = (await _postgresMajor()) ?? 15;
  return [
    _extension("pgTAP", "pgtap", "pgtap", major),
    _extension("plpgsql_check", "plpgsql-check", "plpgsql_check", major),
    {
      what: "pg_prove",
      packages: ["libtap-parser-sourcehandler-pgtap-perl"],
      check: () => onPath("pg_prove"),
    },
    PROMETHEUS,
    { what: "shellcheck", packages: ["shellcheck"], check: () => onPath("shellcheck") },
    CHROMIUM,
  ];
}

/** Installs whatever of `requirements` is missing, or throws naming the packages. */
export async function ensure(requirements: Requirement[]): Promise<void> {
  const missing: Requirement[] = [];
  for (const requirement of requirements) {
    if (!(await requirement.check())) missing.push(requirement);
  }
  if (missing.length === 0) return;
  const packages = missing.flatMap((r) => r.packages);
  if (Deno.uid() !== 0) {
    throw new Error(
      `Missing ${missing.map((r) => r.what).join(", ")}. Install with:\n` +
        `  sudo apt-get install -y ${packages.join(" ")}`,
    );
  }
  console.log(`herald: installing ${packages.join(" ")} with apt-get…`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await Supervisor.run("apt-get", ["update", "-q"], { env });
  await Supervisor.run("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...packages], {
    env,
  });
  for (const requirement of missing) {
    if (!(await requirement.check())) {
      throw new Error(`${requirement.what} is still missing after installing it`);
    }
  }
}

async function _postgresMajor(): Promise<number | undefined> {
  try {
    const majors: number[] = [];
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) {
      const major = Number(entry.name);
      if (major >= 15 && await exists(`/usr/lib/postgresql/${major}/bin/postgres`)) {
        majors.push(major);
      }
    }
    return majors.length ? Math.max(...majors) : undefined;
  } catch {
    return undefined;
  }
}
