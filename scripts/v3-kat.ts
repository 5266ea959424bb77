/**
 * Writes docs/vectors/nstp-v3-kat.json, the published v3 known-answer vectors, from the real
 * machines (packages/core/src/testing/v3-kat.ts). Run: bun scripts/v3-kat.ts
 * The test packages/core/src/v3/kat.test.ts fails if the file and the code disagree.
 */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nativeBackend } from "../packages/core/src/crypto/native.ts";
import { buildV3Kat } from "../packages/core/src/testing/v3-kat.ts";

const root = resolve(fileURLToPath(import.meta.url), "..", "..");
const file = join(root, "docs", "vectors", "nstp-v3-kat.json");
writeFileSync(file, JSON.stringify(await buildV3Kat(nativeBackend), null, 1) + "\n");
console.log(`wrote ${file}`);
