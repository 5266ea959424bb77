/** Locates ../shared/vectors (beside the project checkout) for tests and benches. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export function vectorsDir(): string {
  const fromEnv = process.env.NSTP_VECTORS_DIR;
  if (fromEnv) return fromEnv;
  // packages/core/src/testing -> project root -> ../shared/vectors
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
  const dir = join(root, "..", "shared", "vectors");
  if (!existsSync(dir)) throw new Error(`test vectors not found at ${dir} (set NSTP_VECTORS_DIR)`);
  return dir;
}

export function loadVectors<T>(file: string): T {
  return JSON.parse(readFileSync(join(vectorsDir(), file), "utf8")) as T;
}
