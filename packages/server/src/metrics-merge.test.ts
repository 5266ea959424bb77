import { test } from "node:test";
import assert from "node:assert/strict";
import { mergeWorkerMetrics } from "./metrics-merge.ts";

test("worker metrics merge: labelled by worker, grouped by family, one HELP and TYPE each", () => {
  const a = "# HELP x X.\n# TYPE x gauge\nx 1\n# HELP y Y.\n# TYPE y counter\ny{protocol=\"v2\"} 3\n";
  const b = "# HELP x X.\n# TYPE x gauge\nx 2\n# HELP y Y.\n# TYPE y counter\ny{protocol=\"v2\"} 4\n";
  assert.equal(
    mergeWorkerMetrics([a, undefined, b]),
    "# HELP x X.\n# TYPE x gauge\nx{worker=\"0\"} 1\nx{worker=\"2\"} 2\n# HELP y Y.\n# TYPE y counter\n" +
      "y{worker=\"0\",protocol=\"v2\"} 3\ny{worker=\"2\",protocol=\"v2\"} 4\n",
  );
});
