/**
 * The project's test command: every *.test.ts under Bun (`bun test`), then the same files under the
 * project's Node 24 (`node --test`), then one closing line "N passed, N failed".
 * Exits non-zero if anything failed or if either runner ran no test.
 */
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const bin = (name: string) => join(root, "node_modules", ".bin", name);
const files = "packages/*/src/**/*.test.ts";

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

const bunOut = run("Bun", bin("bun"), ["test", "--timeout", "60000", "packages/"]);
const bunPass = count(bunOut, /^\s*(\d+) pass$/gm);
const bunFail = count(bunOut, /^\s*(\d+) fail$/gm) + count(bunOut, /^\s*(\d+) errors?$/gm);

const nodeOut = run("Node", bin("node"), ["--test", "--test-reporter=spec", files]);
const nodePass = count(nodeOut, /^ℹ pass (\d+)$/gm);
const nodeFail = count(nodeOut, /^ℹ fail (\d+)$/gm) + count(nodeOut, /^ℹ cancelled (\d+)$/gm);

const passed = bunPass + nodePass;
let failed = bunFail + nodeFail;
console.log(`\nBun: ${bunPass} passed, ${bunFail} failed; Node: ${nodePass} passed, ${nodeFail} failed`);
if (bunPass === 0 || nodePass === 0) {
  console.log("a runner ran no test: counted as a failure");
  failed++;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
