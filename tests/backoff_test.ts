import assert from "node:assert/strict";
import { backoffMs } from "../supabase/functions/_shared/resilience/backoff.ts";

Deno.test("backoffMs() spans [0, base·2^(n-1)) with full jitter", () => {
  assert.equal(backoffMs(1, { baseMs: 1000, random: () => 0 }), 0);
  assert.equal(backoffMs(1, { baseMs: 1000, random: () => 0.999999 }), 999);
  assert.equal(backoffMs(4, { baseMs: 1000, random: () => 0.5 }), 4000);
});

Deno.test("backoffMs() never exceeds the cap, even for huge attempt numbers", () => {
  assert.equal(backoffMs(10_000, { baseMs: 1000, capMs: 60_000, random: () => 0.999999 }), 59_999);
});

Deno.test("backoffMs() refuses attempt numbers that are not positive integers", () => {
  assert.throws(() => backoffMs(0), RangeError);
  assert.throws(() => backoffMs(1.5), RangeError);
});
