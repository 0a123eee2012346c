/**
 * `npm run stamp -- [--deployment stable|canary] [--out FILE]`: writes the
 * checkout's git sha, package version and deployment into
 * `supabase/functions/_shared/build.ts`, so the bundle `supabase functions
 * deploy` uploads reports them (`herald_build_info`, readiness) whatever the
 * project's shared secrets say. Run it in the deploy's checkout, never commit
 * the result.
 *
 * @module
 */
import { parseArgs } from "node:util";

const ROOT = new URL("../", import.meta.url).pathname;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    deployment: { type: "string", default: "stable" },
    out: { type: "string", default: `${ROOT}supabase/functions/_shared/build.ts` },
  },
});
if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(values.deployment!)) {
  console.error(`stamp: --deployment must be a short lowercase name, got '${values.deployment}'`);
  Deno.exit(2);
}
const git = await new Deno.Command("git", {
  args: ["rev-parse", "HEAD"],
  cwd: ROOT,
  stderr: "null",
})
  .output();
const gitSha = new TextDecoder().decode(git.stdout).trim();
if (!git.success || !/^[0-9a-f]{40}$/.test(gitSha)) {
  console.error("stamp: not a git checkout (git rev-parse HEAD failed)");
  Deno.exit(2);
}
const { version } = JSON.parse(await Deno.readTextFile(`${ROOT}package.json`));
const template = await Deno.readTextFile(`${ROOT}supabase/functions/_shared/build.ts`);
const stamped = template.replace(
  /export const BUILD = \{[\s\S]*?\};/,
  `export const BUILD = {\n  gitSha: ${JSON.stringify(gitSha)},\n  version: ${
    JSON.stringify(version)
  },\n  deployment: ${JSON.stringify(values.deployment)},\n};`,
);
await Deno.writeTextFile(values.out!, stamped);
console.log(`stamp: ${values.out} → ${gitSha.slice(0, 12)} ${version} ${values.deployment}`);
