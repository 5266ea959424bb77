/** The fleet group's tables in the bench summary (and in the README's "A fleet on one host"). */
import type { Lookup } from "./markdown.ts";
import type { Report } from "./report-types.ts";

const f = (x: number | undefined, digits = 1) =>
  x === undefined || !Number.isFinite(x) ? "–" : x >= 1000 ? Math.round(x).toLocaleString("en-US") : x.toFixed(digits);

export function renderFleet(L: Lookup, report: Report, runtimes: readonly ("bun" | "node")[]): string[] {
  const sessions = report.env.options.fleetSessions as number | undefined;
  const capacity = report.env.options.fleetCapacity as number | undefined;
  if (!sessions || !runtimes.some((r) => L.get({ scenario: `fleet-idle-${sessions}`, runtime: r }) !== undefined)) return [];
  const out: string[] = [];
  const idle = `fleet-idle-${sessions}`;
  const per = (runtime: "bun" | "node", protocol: "tcp" | "tls" | "legacy" | "v2" | "v3") =>
    L.get({ scenario: idle, runtime, protocol, metric: "server RSS per idle session" });
  out.push(
    `## A fleet: ${sessions.toLocaleString("en-US")} idle sessions, a reconnect storm, one and two processes`,
    "",
    "Server resident memory per idle session (a handshake and one echo, then idle; after a full collection), and above a bare socket of the same runtime:",
    "",
    "| build | bare socket (KiB) | node:tls (KiB) | legacy (KiB) | v2 (KiB) | v3 (KiB) | legacy above bare | v2 above bare | v3 above bare | answering (of each) |",
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const r of runtimes) {
    const bare = per(r, "tcp");
    const above = (x: number | undefined) => (x !== undefined && bare !== undefined ? f(x - bare) : "–");
    const answering = (["tcp", "tls", "legacy", "v2", "v3"] as const).map((p) => f(L.get({ scenario: idle, runtime: r, protocol: p, metric: "sessions answering" }), 0)).join(" / ");
    out.push(`| ${r} | ${f(bare)} | ${f(per(r, "tls"))} | ${f(per(r, "legacy"))} | ${f(per(r, "v2"))} | ${f(per(r, "v3"))} | ${above(per(r, "legacy"))} | ${above(per(r, "v2"))} | ${above(per(r, "v3"))} | ${answering} |`);
  }
  if (capacity) {
    out.push("", `One server process holding ${capacity.toLocaleString("en-US")} v2 sessions (devices over ${report.env.options.fleetProcs} processes):`, "", "| build | answering | KiB per session |", "|---|---|---|");
    for (const r of runtimes) {
      const q = { scenario: `fleet-capacity-${capacity}`, runtime: r };
      out.push(`| ${r} | ${f(L.get({ ...q, metric: "sessions answering" }), 0)} | ${f(L.get({ ...q, metric: "server RSS per idle session" }))} |`);
    }
  }
  const storm = `fleet-reconnect-${sessions}`;
  out.push(
    "",
    `${sessions.toLocaleString("en-US")} v2 devices (connectWithBackoff, jittered, cached keys) after a server restart on the same port: time from losing the session to having it back:`,
    "",
    "| build | p50 (ms) | p99 (ms) | max (ms) | back | busy, retried | other retries | gave up | server eld p99 / max (ms) | of the longest gap: ran / waited for a CPU (ms) | longest CPU stretch (ms) |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const r of runtimes) {
    const g = (metric: string) => L.get({ scenario: storm, runtime: r, metric });
    out.push(`| ${r} | ${f(g("back after restart p50"), 0)} | ${f(g("back after restart p99"), 0)} | ${f(g("back after restart max"), 0)} | ${f(g("re-established"), 0)} | ${f(g("refused busy and retried"), 0)} | ${f(g("other failures retried"), 0)} | ${f(g("gave up"), 0)} | ${f(g("server eld p99"))} / ${f(g("server eld max"))} | ${f(g("server longest gap, ran"), 0)} / ${f(g("server longest gap, waited for a CPU"), 0)} | ${f(g("server longest CPU stretch"), 0)} |`);
  }
  out.push("", "v2 against one and two server processes on one port (reusePort), loads from two processes:", "", "| build | handshakes/s, 1 process | 2 processes | echo 16 KiB MB/s, 1 process | 2 processes |", "|---|---|---|---|---|");
  for (const r of runtimes) {
    const g = (w: number, unit: string) => L.get({ scenario: `fleet-workers-${w}`, runtime: r, unit });
    out.push(`| ${r} | ${f(g(1, "1/s"), 0)} | ${f(g(2, "1/s"), 0)} | ${f(g(1, "MB/s"))} | ${f(g(2, "MB/s"))} |`);
  }
  out.push("");
  return out;
}
