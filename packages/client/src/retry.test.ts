// Reconnect with backoff: the delay schedule (the retries against a real server are in packages/integration).
import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay } from "./retry.ts";

test("backoff grows by the factor up to the cap, with jitter in the upper half", () => {
  const o = { initialDelayMs: 100, factor: 2, maxDelayMs: 1000 };
  assert.equal(backoffDelay(1, { ...o, random: () => 0 }), 50);
  assert.equal(backoffDelay(1, { ...o, random: () => 1 }), 100);
  assert.equal(backoffDelay(3, { ...o, random: () => 1 }), 400);
  assert.equal(backoffDelay(10, { ...o, random: () => 1 }), 1000);
});
