/**
 * bun run bench:compare A.json B.json: the two reports side by side, B / A for every figure they
 * share, flagged (*) where the change exceeds the spread measured across repetitions in either run.
 */
import { readFileSync } from "node:fs";
import type { Report, ResultRow } from "./report-types.ts";
import { spread } from "./stats.ts";

const [a, b] = process.argv.slice(2);
if (!a || !b) {
  console.error("usage: bun run bench:compare A.json B.json");
  process.exit(2);
}
const load = (f: string) => JSON.parse(readFileSync(f, "utf8")) as Report;
const A = load(a), B = load(b);
const key = (r: ResultRow) => [r.scenario, r.runtime, r.protocol, r.size ?? "", r.metric, r.unit].join("|");
const inB = new Map(B.results.map((r) => [key(r), r]));
/** Without repetitions there is no measured spread: 10% stands in, and says so. */
const FALLBACK = 0.1;

console.log(`A: ${a} (${A.env.commit}, ${A.env.date})\nB: ${b} (${B.env.commit}, ${B.env.date})\n`);
console.log("| scenario | build | protocol | size | metric | A | B | B / A | spread | |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
let flagged = 0, shared = 0;
for (const ra of A.results) {
  const rb = inB.get(key(ra));
  if (!rb) continue;
  shared++;
  const r = rb.value / ra.value;
  const measured = Math.max(spread(ra.samples), spread(rb.samples));
  const threshold = measured > 0 ? measured : FALLBACK;
  const flag = Math.abs(r - 1) > threshold;
  if (flag) flagged++;
  const f = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
  console.log(`| ${ra.scenario} | ${ra.runtime} | ${ra.protocol} | ${ra.size ?? ""} | ${ra.metric} (${ra.unit}) | ${f(ra.value)} | ${f(rb.value)} | ${r.toFixed(2)} | ${measured > 0 ? `${(measured * 100).toFixed(0)}%` : "none (10%)"} | ${flag ? "*" : ""} |`);
}
console.log(`\n${shared} figures in both; ${flagged} changed by more than their spread (*).`);
