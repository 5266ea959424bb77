/**
 * Every object a value retains through its data properties (string-keyed own properties, array
 * elements; typed arrays are leaves, closures are not followed): for tests that an established
 * machine no longer holds what only its handshake needed (issue 13, and key hygiene).
 */
export function reachable(root: object): Set<object> {
  const seen = new Set<object>();
  const stack: object[] = [root];
  // Bounded: each object is expanded once.
  while (stack.length > 0) {
    const o = stack.pop()!;
    if (seen.has(o)) continue;
    seen.add(o);
    if (ArrayBuffer.isView(o)) continue;
    for (const key of Object.keys(o)) {
      const v: unknown = (o as Record<string, unknown>)[key];
      if (v !== null && typeof v === "object") stack.push(v);
    }
  }
  return seen;
}
