/**
 * A time limit per test, preloaded by `npm test` (`deno test --preload`): a
 * test still running after HERALD_TEST_LIMIT_S seconds (default 300) fails
 * by its own name, saying so, and the run goes on, instead of hanging until
 * CI's outside timeout kills it without a word about which test it was.
 *
 * The wrapper is imported as a data: URL because Deno names a test's file and
 * line after the first caller on the stack whose URL is a file: one
 * (`op_current_user_call_site`); a wrapper in a file would name itself.
 */
const LIMIT_S = _limit(Deno.env.get("HERALD_TEST_LIMIT_S"));

/** Whole seconds, at most what a timer can wait (2^31 - 1 ms); unset or empty: 300. */
function _limit(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return 300;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds * 1000 > 2 ** 31 - 1) {
    throw new RangeError(
      `HERALD_TEST_LIMIT_S must be a whole number of seconds from 1 to 2147483, got '${value}'`,
    );
  }
  return seconds;
}

const source = await Deno.readTextFile(new URL("./time_limited_test.js", import.meta.url));
const { timeLimited } = await import(
  `data:text/javascript;base64,${btoa(unescape(encodeURIComponent(source)))}`
);
Object.defineProperty(Deno, "test", { value: timeLimited(Deno.test, LIMIT_S) });
