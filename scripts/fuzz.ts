/**
 * bun run fuzz [-- --runs-per-property N] [--seed S] [--only SUBSTRING]
 *
 * Runs every fuzzing property (packages/core/src/testing/fuzz-properties.ts, v3-fuzz-properties.ts) for N cases each
 * (default 120,000: over a million in all), with one seed for the whole run, printed first. A failure
 * prints fast-check's counterexample, seed and path; `--seed S` replays the run.
 */
import { parseArgs } from "node:util";
import { FUZZ_PROPERTIES, fc } from "../packages/core/src/testing/fuzz-properties.ts";
import { V3_FUZZ_PROPERTIES } from "../packages/core/src/testing/v3-fuzz-properties.ts";

const { values } = parseArgs({
  options: { "runs-per-property": { type: "string", default: "120000" }, seed: { type: "string" }, only: { type: "string" } },
  strict: true,
});
const runs = Number(values["runs-per-property"]);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const props = [...FUZZ_PROPERTIES, ...V3_FUZZ_PROPERTIES].filter((p) => !values.only || p.name.includes(values.only));
console.log(`fuzz: ${props.length} properties x ${runs} cases = ${props.length * runs} cases, seed ${seed}`);
let failed = 0;
const started = performance.now();
for (const { name, property } of props) {
  const t = performance.now();
  const r = fc.check(property, { numRuns: runs, seed });
  if (r.failed) {
    failed++;
    console.log(`FAIL ${name}\n${fc.defaultReportMessage(r)}`);
  } else {
    console.log(`ok   ${name}: ${r.numRuns} cases in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
}
console.log(`fuzz: ${props.length - failed} of ${props.length} properties held over ${props.length * runs} cases in ${((performance.now() - started) / 1000).toFixed(0)} s (seed ${seed})`);
process.exit(failed ? 1 : 0);
