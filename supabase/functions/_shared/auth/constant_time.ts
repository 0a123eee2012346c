/**
 * Comparison of secrets whose time does not depend on where they differ.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Whether `a` and `b` are equal, compared in constant time for a given length. */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/**
 * Whether `presented` equals one of `keys`. Every key is compared, so the
 * time taken does not tell which one nearly matched.
 */
export function equalsAnyKey(presented: string, keys: string[]): boolean {
  return matchingKey(presented, keys) >= 0;
}

/** The index of the key `presented` equals, or -1; every key is compared, as in {@linkcode equalsAnyKey}. */
export function matchingKey(presented: string, keys: string[]): number {
  return keys.map((key) => constantTimeEqual(presented, key)).indexOf(true);
}
