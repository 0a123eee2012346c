// Deno.test with a time limit per test; loaded by time_limit.ts as a data:
// URL (see there for why). Plain JavaScript: a data: URL is not type-checked.

/**
 * @param {typeof Deno.test} original
 * @param {number} limitS
 * @returns {typeof Deno.test}
 */
export function timeLimited(original, limitS) {
  /** @param {(definition: Deno.TestDefinition) => void} register */
  const withLimit = (register) => (...args) => {
    const test = definition(args);
    register({ ...test, fn: limited(test.name, test.fn, limitS) });
  };
  const test = withLimit((d) => original(d));
  test.ignore = withLimit((d) => original.ignore(d));
  test.only = withLimit((d) => original.only(d));
  return test;
}

function limited(name, fn, limitS) {
  return async (t) => {
    let timer;
    const limit = new Promise((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `"${name}" ran past the time limit of ${limitS} s per test ` +
                "(HERALD_TEST_LIMIT_S): something it awaits never settles",
            ),
          ),
        limitS * 1000,
      );
    });
    try {
      await Promise.race([fn(t), limit]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Deno.test's overloads, as one definition. */
function definition([first, second, third]) {
  if (typeof first === "function") return { name: first.name, fn: first };
  if (typeof first === "string") {
    return typeof second === "function"
      ? { name: first, fn: second }
      : { ...second, name: first, fn: third };
  }
  if (typeof second === "function") {
    return { ...first, name: first.name ?? second.name, fn: second };
  }
  return first;
}
