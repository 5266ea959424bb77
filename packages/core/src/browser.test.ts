// The core's root and its noble backend bundle for a browser: `bun build --target=browser` succeeds
// and the bundle imports no `node:` module (issue 14: a browser or bundler consumer gets the protocol
// machines without server code). The ./node subpath is bundled the same way as a control: it must be
// seen to pull in `node:` modules, or this check could not fail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = dirname(fileURLToPath(import.meta.url));
const BUN = join(SRC, "..", "..", "..", "node_modules", ".bin", "bun");
const NODE_IMPORT = /\bfrom\s*["']node:|\brequire\(["']node:|\bimport\(["']node:/;

/**
 * Bundles `source` (an ES module importing core files by absolute path) for the browser. Bun would
 * otherwise substitute its browser polyfills for `node:` modules; kept external, any that is reached
 * stays visible as an import in the output.
 */
function bundleForBrowser(source: string): { ok: boolean; output: string; log: string } {
  const dir = mkdtempSync(join(tmpdir(), "nstp-browser-"));
  try {
    writeFileSync(join(dir, "entry.js"), source);
    const r = spawnSync(BUN, ["build", "--target=browser", "--format=esm", "--external", "node:*", join(dir, "entry.js"), "--outdir", join(dir, "out")], { encoding: "utf8", timeout: 60_000 });
    const outDir = join(dir, "out");
    const output = r.status === 0 ? readdirSync(outDir).map((f) => readFileSync(join(outDir, f), "utf8")).join("\n") : "";
    return { ok: r.status === 0, output, log: (r.stdout ?? "") + (r.stderr ?? "") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("the core root with the noble backend bundles for the browser with no node: import", () => {
  const { ok, output, log } = bundleForBrowser(
    // Everything the root exports is kept (no tree-shaking can hide an import it reaches).
    `export * from ${JSON.stringify(join(SRC, "index.ts"))};
     export { nobleBackend } from ${JSON.stringify(join(SRC, "crypto", "noble.ts"))};`,
  );
  assert.ok(ok, log);
  assert.doesNotMatch(output, NODE_IMPORT);
  // The protocol code is really in the bundle (not tree-shaken to nothing).
  assert.match(output, /Noise_NNpsk0_25519_AESGCM_SHA256/);
});

test("control: the ./node subpath does import node: modules, so the check above can fail", () => {
  const { ok, output } = bundleForBrowser(`export * from ${JSON.stringify(join(SRC, "node.ts"))};`);
  assert.ok(!ok || NODE_IMPORT.test(output), "bundling ./node for the browser neither failed nor kept a node: import");
});
