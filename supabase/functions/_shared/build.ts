/**
 * The build this bundle was cut from, written by `npm run stamp` before a
 * deploy (`scripts/stamp_build.ts`). On hosted Supabase every function shares
 * one set of secrets, so a canary slug cannot learn from the environment that
 * it is the canary: it is compiled in here. Empty values: not stamped (a
 * checkout, the local stack), and the environment or defaults decide.
 *
 * @module
 */

/** The stamped build. */
export const BUILD = {
  gitSha: "",
  version: "",
  deployment: "",
};
