/**
 * The fleet group's density scenario alone, for chosen protocols on one runtime, with the server's
 * heap figures: what an idle session costs and what it is made of (issue 13). Memory per session does
 * not depend on CPU speed, so this may run niced on a busy machine.
 *
 *   bun bench/src/density.ts --runtime bun --protocols v2,v3 --sessions 10000 [--census] [--json]
 *
 * Prints, per protocol: server RSS per idle session (KiB, after a full collection, above the warmed-up
 * server, as the fleet group measures it) and, with --census, the JS heap per session (Bun: JSC's
 * heap size, capacity and objects; Node: V8's used and total heap) and the RSS per session still held
 * once every session closed (the allocator's high-water). The Node server runs the built dist.
 */
import { parseArgs } from "node:util";
import { loadavg } from "node:os";
import { measureIdle } from "./fleet.ts";
import type { Runtime } from "./procs.ts";
import type { Protocol } from "./report-types.ts";

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "bun" },
    protocols: { type: "string", default: "tcp,tls,legacy,v2,v3" },
    sessions: { type: "string", default: "10000" },
    procs: { type: "string", default: "4" },
    census: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    /** Handshakes each device process keeps in flight (fleet-load's --concurrency, default 64). */
    concurrency: { type: "string" },
    /** Server arguments instead of the fleet group's (e.g. "--kdf inline": no pool, every curve step inline). */
    "server-args": { type: "string" },
  },
  strict: true,
});

const runtime = values.runtime as Runtime;
const sessions = Number(values.sessions);
const num = (x: unknown) => (typeof x === "number" ? x : 0);
/** The heap command's figures that matter here, in bytes, per runtime. */
function heapFigures(h: Record<string, unknown>): Record<string, number> {
  const mem = h.memory as Record<string, number>;
  if (runtime === "bun") return { heapSize: num(h.heapSize), heapCapacity: num(h.heapCapacity), extra: num(h.extraMemorySize), objects: num(h.objectCount), external: num(mem.external) };
  const v8 = h.heap as Record<string, number>;
  return { used: num(v8.used_heap_size), total: num(v8.total_heap_size), physical: num(v8.total_physical_size), malloced: num(v8.malloced_memory), external: num(mem.external) };
}

let bare: number | undefined;
console.log(`density: ${runtime}, ${sessions} sessions, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
for (const protocol of values.protocols!.split(",") as Protocol[]) {
  const serverArgs = values["server-args"] !== undefined && protocol !== "tcp" && protocol !== "tls" ? values["server-args"].split(" ").filter(Boolean) : undefined;
  const m = await measureIdle(runtime, protocol, sessions, Number(values.procs), values.census, serverArgs, values.concurrency ? ["--concurrency", values.concurrency] : []);
  if (protocol === "tcp") bare = m.perSession;
  const above = bare !== undefined && protocol !== "tcp" ? ` (+${(m.perSession - bare).toFixed(1)} above bare)` : "";
  let line = `${protocol.padEnd(6)} RSS ${m.perSession.toFixed(2)} KiB/session${above}, ${m.ok} answering, ${m.failed} not, ${m.retries} retries while opening`;
  if (m.heap) {
    const [b, a, c] = [m.heap.before, m.heap.after, m.heap.closed].map(heapFigures);
    const per = (k: string, x = a) => ((x![k]! - b![k]!) / sessions / 1024).toFixed(2);
    line += `; heap per session (KiB) ${Object.keys(a!).filter((k) => k !== "objects").map((k) => `${k} ${per(k)}`).join(", ")}`;
    if (runtime === "bun") line += `, objects ${((a!.objects! - b!.objects!) / sessions).toFixed(1)}`;
    line += `; after closing all: RSS ${((m.rssClosed! - m.rssBefore) / sessions / 1024).toFixed(2)} KiB/session, ${Object.keys(c!).filter((k) => k !== "objects").map((k) => `${k} ${per(k, c)}`).join(", ")}`;
    if (values.json) console.log(JSON.stringify({ protocol, after: m.heap.after, report: m.report }));
  }
  const curve = m.report.curveJobs as Record<string, number> | undefined;
  if (protocol === "v3" && curve) line += `; curve steps ${JSON.stringify(curve)}`;
  console.log(line);
}
