/** Whether a handler's or a key store's answer is a promise: both may answer synchronously or not. */
export function isThenable<T>(x: T | PromiseLike<T>): x is PromiseLike<T> {
  // The common answers first: a "then" lookup on a Uint8Array walks its whole prototype chain, and
  // this runs once per message (measured: a quarter of the server's time on 1 KiB echo under Bun).
  if (x === undefined || x instanceof Uint8Array || typeof x === "string") return false;
  return typeof (x as PromiseLike<T>).then === "function";
}
