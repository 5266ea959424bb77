// A short pass of the fuzzing properties (testing/fuzz-properties.ts); scripts/fuzz.ts runs a million.
import { test } from "node:test";
import { FUZZ_PROPERTIES, fc } from "./testing/fuzz-properties.ts";

const RUNS = Number(process.env.NSTP_FUZZ_RUNS ?? 150);

for (const { name, property } of FUZZ_PROPERTIES) {
  test(`fuzz: ${name}`, () => {
    fc.assert(property, { numRuns: RUNS });
  });
}
