/** The bench's users: one warm user every server holds a key for, and cold users derived on demand. */
export const BENCH_USER = "bench";
export const BENCH_PASSWORD = "bench-password";

/** Cold users are named cold-<run>-<i>; their password is derived from the name. */
export function coldPassword(name: string): string {
  return `pw:${name}`;
}
