/**
 * Whole-process timing with hyperfine (Debian package): the client CLI connecting, completing the
 * v2 handshake (its PBKDF2 included, as every fresh process pays it) and sending five messages, Bun
 * build vs Node build, against a Bun server. Skipped, with how to install it, where it is missing.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, NODE_MALLOC_ENV, ROOT, type Runtime, startServer } from "./procs.ts";
import type { ResultRow } from "./report-types.ts";
import { BENCH_PASSWORD, BENCH_USER } from "./users.ts";

export async function hyperfine(runtimes: Runtime[], quick: boolean, progress: (m: string) => void): Promise<{ rows: ResultRow[]; note: string }> {
  const found = spawnSync("hyperfine", ["--version"], { encoding: "utf8" });
  if (found.status !== 0) {
    const note = "hyperfine not found: install it with `sudo apt-get install -y hyperfine` (Debian package); the whole-process timing was skipped";
    progress(note);
    return { rows: [], note };
  }
  const server = await startServer("bun", ["--kdf", "pool"]);
  const dir = mkdtempSync(join(tmpdir(), "nstp-hyperfine-"));
  try {
    // Each build as users run it: Bun from the sources, Node from the built dist (`bun run build`).
    const cli = (r: Runtime) => join(ROOT, "packages", "client", r === "node" ? "dist/cli.js" : "src/cli.ts");
    const args = `--port ${server.port} --user ${BENCH_USER} --password ${BENCH_PASSWORD}`;
    const commands = runtimes.map((r) => (r === "node" ? `env ${Object.entries(NODE_MALLOC_ENV).map(([k, v]) => `${k}=${v}`).join(" ")} ${BIN[r]} ${cli(r)} ${args}` : `${BIN[r]} ${cli(r)} ${args}`));
    const out = join(dir, "hf.json");
    const r = spawnSync("hyperfine", ["--warmup", "1", "--runs", quick ? "3" : "15", "--export-json", out, "--style", "none", ...commands], { encoding: "utf8", timeout: 180_000 });
    if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr}`);
    const data = JSON.parse(readFileSync(out, "utf8")) as { results: { median: number; stddev: number; times: number[] }[] };
    const rows = data.results.map((x, i): ResultRow => ({
      scenario: "cli-connect-5-messages",
      runtime: runtimes[i]!,
      protocol: "v2",
      metric: "wall time",
      value: x.median * 1000,
      unit: "ms",
      samples: x.times.map((t) => t * 1000),
    }));
    for (const row of rows) progress(`hyperfine ${row.runtime} client CLI: ${row.value.toFixed(0)} ms`);
    return { rows, note: found.stdout.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
}
