// A short pass of the admission and budget properties (testing/admission-properties.ts);
// scripts/fuzz.ts runs them with the protocol properties, a million cases in all.
import { test } from "node:test";
import { fc } from "@nstp/testkit";
import { ADMISSION_PROPERTIES } from "./testing/admission-properties.ts";

const RUNS = Number(process.env.NSTP_FUZZ_RUNS ?? 300);

for (const { name, property } of ADMISSION_PROPERTIES) {
  test(`fuzz: ${name}`, () => {
    fc.assert(property, { numRuns: RUNS });
  });
}
