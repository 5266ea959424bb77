// A short pass of v3's fuzzing properties (testing/v3-fuzz-properties.ts).
import { test } from "node:test";
import { fc } from "../testing/fuzz-properties.ts";
import { V3_FUZZ_PROPERTIES } from "../testing/v3-fuzz-properties.ts";

const RUNS = Number(process.env.NSTP_FUZZ_RUNS ?? 60);

for (const { name, property } of V3_FUZZ_PROPERTIES) {
  test(`fuzz: ${name}`, { timeout: 120_000 }, () => {
    fc.assert(property, { numRuns: RUNS });
  });
}
