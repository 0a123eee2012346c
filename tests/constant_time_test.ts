/**
 * The one way Herald compares secrets: equal only when equal (length,
 * multi-byte text, a difference anywhere), and every key read whichever
 * matches, so timing says nothing about which key nearly matched.
 */
import assert from "node:assert/strict";
import {
  constantTimeEqual,
  equalsAnyKey,
  matchingKey,
} from "../supabase/functions/_shared/auth/constant_time.ts";

Deno.test("constantTimeEqual(): equal strings only, whatever the length or alphabet", () => {
  const cases: [string, string, boolean][] = [
    ["", "", true],
    ["sb_secret_abc", "sb_secret_abc", true],
    ["é✓🔑", "é✓🔑", true],
    ["sb_secret_abc", "sb_secret_abd", false],
    ["xb_secret_abc", "sb_secret_abc", false],
    ["sb_secret_abc", "sb_secret_ab", false],
    ["sb_secret_ab", "sb_secret_abc", false],
    ["", "a", false],
    ["a\u0000", "a", false],
    ["é", "e\u0301", false],
    // The same UTF-16 length, different bytes.
    ["é", "e", false],
  ];
  for (const [a, b, equal] of cases) {
    assert.equal(constantTimeEqual(a, b), equal, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});

Deno.test("matchingKey(): the index of the key presented, or -1; equalsAnyKey() says whether there is one", () => {
  const keys = ["key-one", "key-two", "key-three"];
  assert.equal(matchingKey("key-two", keys), 1);
  assert.equal(matchingKey("key-four", keys), -1);
  assert.equal(matchingKey("key-two", []), -1);
  assert.equal(equalsAnyKey("key-three", keys), true);
  assert.equal(equalsAnyKey("key-thre", keys), false);
  assert.equal(equalsAnyKey("", [""]), true);
});

Deno.test("matchingKey(): every key is read, wherever the match is", () => {
  for (const presented of ["key-one", "key-three", "none"]) {
    const read = new Set<string>();
    const keys = new Proxy(["key-one", "key-two", "key-three"], {
      get(target, property, receiver) {
        if (typeof property === "string" && /^\d+$/.test(property)) read.add(property);
        return Reflect.get(target, property, receiver);
      },
    });
    matchingKey(presented, keys);
    assert.deepEqual([...read].sort(), ["0", "1", "2"], presented);
  }
});
