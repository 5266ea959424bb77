/**
 * The project's test command: the build (`turbo run build`: each package's dist), every *.test.ts
 * under Bun (`bun test`), then the same files under the project's Node 24 (`node --test`), then the
 * packaging test (scripts/packaging.ts: the packed packages installed and run under Node 22, Node 24
 * and Bun, and the single-file executables), then the bench in --quick mode through turbo (it checks every
 * scenario ran and every reply was right; never speed), then the soak with 100 sessions against a
 * Bun and a Node server, then one closing line "N passed, N failed".
 * Exits non-zero if anything failed or if either runner ran no test. `--no-bench` skips the bench.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const bin = (name: string) => join(root, "node_modules", ".bin", name);
const files = "packages/*/src/**/*.test.ts";

/** turbo looks for the package manager (bun) on PATH: the project's own first, however this was started. */
const turboEnv = { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH ?? ""}` };

function run(label: string, cmd: string, args: string[]): string {
  console.log(`\n=== ${label}: ${[cmd, ...args].join(" ")}`);
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 15 * 60_000 });
  const out = (r.stdout ?? "") + (r.stderr ?? "");
  process.stdout.write(out);
  if (r.error) console.log(`${label}: ${r.error.message}`);
  return out;
}

function count(out: string, re: RegExp): number {
  const m = [...out.matchAll(re)].at(-1);
  return m ? Number(m[1]) : 0;
}

// Node runs the built packages: the tests' sources import @nstp/* through the packages' exports,
// which resolve to dist under Node (the "import" condition), and the CLI processes the tests spawn
// on Node are the packages' dist/cli.js. Bun runs the sources (the "bun" condition).
const build = spawnSync(bin("turbo"), ["run", "build", "--output-logs=errors-only"], { cwd: root, env: turboEnv, stdio: "inherit", timeout: 10 * 60_000 });
const buildFail = build.status === 0 ? 0 : 1;
if (buildFail) console.log(`build failed (${build.error?.message ?? `exit ${build.status}`}): the Node runs below use a stale or missing dist`);

const bunOut = run("Bun", bin("bun"), ["test", "--timeout", "60000", "packages/"]);
const bunPass = count(bunOut, /^\s*(\d+) pass$/gm);
const bunFail = count(bunOut, /^\s*(\d+) fail$/gm) + count(bunOut, /^\s*(\d+) errors?$/gm);

const nodeOut = run("Node", bin("node"), ["--test", "--test-reporter=spec", files]);
const nodePass = count(nodeOut, /^ℹ pass (\d+)$/gm);
const nodeFail = count(nodeOut, /^ℹ fail (\d+)$/gm) + count(nodeOut, /^ℹ cancelled (\d+)$/gm);

// The packaging test: one pass or fail per check it makes (it prints "packaging: N passed, N failed").
const packOut = run("Packaging", bin("bun"), [join(root, "scripts", "packaging.ts"), "--no-build"]);
const packPass = count(packOut, /^packaging: (\d+) passed/gm);
const packFail = count(packOut, /^packaging: \d+ passed, (\d+) failed/gm) + (packOut.includes("packaging: ") ? 0 : 1);

let benchPass = 0, benchFail = 0;
if (!process.argv.includes("--no-bench")) {
  const out = mkdtempSync(join(tmpdir(), "nstp-bench-"));
  const r = spawnSync(bin("turbo"), ["run", "bench", "--", "--quick", "--out", out], { cwd: root, env: turboEnv, stdio: "inherit", timeout: 10 * 60_000 });
  rmSync(out, { recursive: true, force: true });
  if (r.status === 0) benchPass = 1;
  else benchFail = 1;
  console.log(`bench --quick: ${r.status === 0 ? "complete" : `failed (${r.error?.message ?? `exit ${r.status}`})`}`);
}

// The soak at CI size: 100 concurrent sessions, every reply checked once, in order, intact; v2 and
// v3 (whose 100 handshakes add well under a second of curve work to each run).
let soakPass = 0, soakFail = 0;
for (const server of ["bun", "node"]) {
  for (const protocol of ["v2", "v3"]) {
    const r = spawnSync(bin("bun"), ["bench/src/soak.ts", "--sessions", "100", "--messages", "100", "--server", server, "--protocol", protocol], { cwd: root, stdio: "inherit", timeout: 5 * 60_000 });
    if (r.status === 0) soakPass++;
    else soakFail++;
  }
}

const passed = bunPass + nodePass + packPass + benchPass + soakPass;
let failed = buildFail + bunFail + nodeFail + packFail + benchFail + soakFail;
console.log(`\nbuild: ${buildFail ? "failed" : "ok"}; Bun: ${bunPass} passed, ${bunFail} failed; Node: ${nodePass} passed, ${nodeFail} failed; packaging: ${packPass} passed, ${packFail} failed; bench: ${benchPass} passed, ${benchFail} failed; soak: ${soakPass} passed, ${soakFail} failed`);
if (bunPass === 0 || nodePass === 0) {
  console.log("a runner ran no test: counted as a failure");
  failed++;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
