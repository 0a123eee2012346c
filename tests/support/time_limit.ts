/**
 * A time limit per test, preloaded by `npm test` (`deno test --preload`): a
 * test still running after HERALD_TEST_LIMIT_S seconds (default 300) fails
 * by its own name, saying so, and the run goes on, instead of hanging until
 * CI's outside timeout kills it without a word about which test it was. What
 * it waited on stays pending, so the sanitizers report that too.
 *
 * The wrapper is imported as a data: URL because Deno names a test's file and
 * line after the first caller on the stack whose URL is a file: one
 * (`op_current_user_call_site`); a wrapper in a file would name itself.
 */
const LIMIT_S = Number(Deno.env.get("HERALD_TEST_LIMIT_S") ?? 300);

const source = await Deno.readTextFile(new URL("./time_limited_test.js", import.meta.url));
const { timeLimited } = await import(
  `data:text/javascript;base64,${btoa(unescape(encodeURIComponent(source)))}`
);
Object.defineProperty(Deno, "test", { value: timeLimited(Deno.test, LIMIT_S) });
