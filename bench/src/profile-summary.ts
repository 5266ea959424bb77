/**
 * bun bench/src/profile-summary.ts FILE.cpuprofile... [--top N]: each CPU profile's top frames by self
 * time and by inclusive time, as Markdown (what `bench --profile` writes beside the profiles, and what
 * the note's before/after summaries quote).
 *
 * A .cpuprofile (Chrome DevTools format, written by `bun --cpu-prof` and `node --cpu-prof`) is a call
 * tree of nodes and a list of samples, each a node id with the time since the previous sample.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Frames that are not work: excluded from the totals the percentages are of. */
const IDLE = new Set(["(idle)", "(root)"]);

function frameName(f: CallFrame): string {
  const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : "";
  return `${f.functionName || "(anonymous)"}${where ? ` ${where}` : ""}`;
}

export function summarise(profile: CpuProfile, top: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    if (!node || IDLE.has(node.callFrame.functionName) || dt <= 0) continue;
    busy += dt;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + dt);
    // Each function once per sample, however often it recurs on the stack.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (IDLE.has(f.functionName)) continue;
      const k = frameName(f);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  }
  const rows = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `| ${(100 * v / busy).toFixed(1)} % | \`${k}\` |`);
  return [
    `busy ${(busy / 1e6).toFixed(2)} s of CPU sampled`,
    "",
    "| self | frame |",
    "|---|---|",
    ...rows(self),
    "",
    "| inclusive | frame |",
    "|---|---|",
    ...rows(inclusive),
  ];
}

if (import.meta.main ?? process.argv[1]?.endsWith("profile-summary.ts")) {
  const { values, positionals } = parseArgs({ options: { top: { type: "string", default: "15" } }, allowPositionals: true, strict: true });
  for (const f of positionals) {
    console.log(`### ${basename(f)}\n`);
    console.log(summarise(JSON.parse(readFileSync(f, "utf8")) as CpuProfile, Number(values.top)).join("\n") + "\n");
  }
}
