/**
 * The bench group "fleet": many idle devices on one host.
 * - Density: the server's resident memory per idle session (handshake and one echo, then idle) at
 *   `sessions` sessions, for every version, measured after a full collection, beside a bare socket
 *   (the same runtime's transport, raw TCP) and a node:tls connection. The devices are spread over
 *   several processes.
 * - Reconnect storm: `sessions` v2 devices (connectWithBackoff, jittered) lose their server to a
 *   restart; the time each takes to be back (p50/p99/max) and how many were refused busy and retried.
 * - Every core: handshakes/s and echo MB/s against 1 and 2 server processes on one port (reusePort).
 */
import type { LoopStallReport } from "@nstp/testkit";
import { type CommandProc, type Runtime, type ServerProc, runLoad, startCommandProc, startServer } from "./procs.ts";
import type { Protocol, ResultRow } from "./report-types.ts";
import { median, percentile, sortNumbers } from "./stats.ts";

export interface FleetParams {
  /** Idle sessions for the density and the storm. */
  sessions: number;
  /** v2 sessions one server process must hold, each still answering (the capacity row). */
  capacity: number;
  /** Device processes the sessions are spread over. */
  deviceProcs: number;
  duration: number;
  warmup: number;
  reps: number;
}

type Add = (row: Omit<ResultRow, "value"> & { value?: number }) => void;
/** Opening 10,000 v3 sessions against a Node server is curve work: 10,000 × 20 ms over the pool's threads, plus retries. */
const LOAD_TIMEOUT = 600_000;
/** The devices run on Bun whatever the server's build: the load is not what is measured. */
const DEVICE_RUNTIME: Runtime = "bun";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startDevices(protocol: Protocol, port: number, total: number, procs: number, extra: string[] = []): Promise<CommandProc[]> {
  const per = Math.ceil(total / procs);
  const sizes = Array.from({ length: procs }, (_, i) => Math.max(0, Math.min(per, total - i * per))).filter((x) => x > 0);
  return Promise.all(sizes.map((n) => startCommandProc(DEVICE_RUNTIME, "fleet-load.ts", ["--protocol", protocol, "--port", String(port), "--sessions", String(n), ...extra], LOAD_TIMEOUT)));
}

async function checkAll(devices: CommandProc[]): Promise<{ ok: number; failed: number }> {
  const r = await Promise.all(devices.map((d) => d.command("check", 120_000)));
  return { ok: r.reduce((n, x) => n + (x.ok as number), 0), failed: r.reduce((n, x) => n + (x.failed as number), 0) };
}

const rssAfterGc = async (s: ServerProc) => (await s.command("gc")).rssMB! * 1e6;

/**
 * Server RSS per idle session, for every protocol and both baselines, on one runtime's server; and
 * the capacity row: `capacity` v2 sessions on one server process, each still answering.
 */
export async function densityScenario(runtime: Runtime, p: FleetParams, add: Add, progress: (m: string) => void): Promise<void> {
  for (const protocol of ["tcp", "tls", "legacy", "v2", "v3"] as Protocol[]) await idleSessions(runtime, protocol, p.sessions, `fleet-idle-${p.sessions}`, p, add, progress);
  await idleSessions(runtime, "v2", p.capacity, `fleet-capacity-${p.capacity}`, p, add, progress);
}

/** What one density measurement found (fleet group and bench/src/density.ts). */
export interface IdleMeasurement {
  /** Server RSS per idle session (KiB), after a full collection, above the warmed-up server's. */
  perSession: number;
  rssBefore: number;
  rssAfter: number;
  /** Server RSS after every session closed (bytes): the allocator's high-water the burst left. */
  rssClosed?: number;
  ok: number;
  failed: number;
  /** Handshakes the devices retried while opening (refused busy, mostly). */
  retries: number;
  /** With `census`: the server's heap command before, with the sessions, and after closing them. */
  heap?: { before: Record<string, unknown>; after: Record<string, unknown>; closed: Record<string, unknown> };
  /** The server's report (where v3's curve steps ran) once the sessions are up. */
  report: Record<string, unknown>;
}

/**
 * The server arguments of a density run: the server's default handshake cap (512) and its default
 * pool (a thread per core, as the server CLI sizes it). Until session 6 the pool had one thread; since
 * v3's overflow curve steps no longer run on the event loop (crypto/placement.ts), one thread on Node
 * (20 ms a step) opened 10,000 v3 sessions at under 50 a second and the full bench's opening timed out.
 */
export function densityServerArgs(protocol: Protocol): string[] {
  return protocol === "tcp" || protocol === "tls" ? ["--protocol", protocol] : ["--kdf", "pool", "--max-handshaking", "512"];
}

/**
 * `sessions` idle sessions of `protocol` on a fresh server of `runtime`: its RSS per session after a
 * full collection; with `census`, also its heap figures and the RSS left once every session closed.
 */
export async function measureIdle(runtime: Runtime, protocol: Protocol, sessions: number, deviceProcs: number, census = false, serverArgs = densityServerArgs(protocol), deviceArgs: string[] = []): Promise<IdleMeasurement> {
  // The server's default handshake cap (512), so that its default connection cap (from the
  // open-file limit, capacity.ts) leaves room for the capacity row.
  const server = await startServer(runtime, serverArgs);
  let devices: CommandProc[] = [];
  try {
    // Warm the server's code paths and allocator with a few sessions first, then measure from there.
    const warm = await startDevices(protocol, server.port, 50, 1);
    await Promise.all(warm.map((d) => d.stop()));
    await sleep(500);
    const rssBefore = await rssAfterGc(server);
    const heapBefore = census ? await server.command("heap") : undefined;
    devices = await startDevices(protocol, server.port, sessions, deviceProcs, deviceArgs);
    await sleep(1000);
    const rssAfter = await rssAfterGc(server);
    const heapAfter = census ? await server.command("heap") : undefined;
    const report = await server.command("report");
    const { ok, failed } = await checkAll(devices);
    const retries = devices.reduce((n, d) => n + ((JSON.parse(d.first) as { retries?: number }).retries ?? 0), 0);
    const m: IdleMeasurement = { perSession: (rssAfter - rssBefore) / sessions / 1024, rssBefore, rssAfter, ok, failed, retries, report };
    if (census) {
      await Promise.all(devices.map((d) => d.stop()));
      devices = [];
      await sleep(1000);
      m.rssClosed = await rssAfterGc(server);
      m.heap = { before: heapBefore!, after: heapAfter!, closed: await server.command("heap") };
    }
    return m;
  } finally {
    await Promise.all(devices.map((d) => d.stop()));
    await server.stop();
  }
}

async function idleSessions(runtime: Runtime, protocol: Protocol, sessions: number, scenario: string, p: FleetParams, add: Add, progress: (m: string) => void): Promise<void> {
  const { perSession, rssBefore, rssAfter, ok, failed } = await measureIdle(runtime, protocol, sessions, p.deviceProcs);
  add({ scenario, runtime, protocol, metric: "server RSS per idle session", unit: "KiB", samples: [perSession] });
  add({ scenario, runtime, protocol, metric: "sessions answering", unit: "count", samples: [ok] });
  progress(`${runtime} ${sessions} idle ${protocol}: ${perSession.toFixed(1)} KiB per session (server RSS ${(rssBefore / 1e6).toFixed(0)} -> ${(rssAfter / 1e6).toFixed(0)} MB), ${ok} answering, ${failed} not`);
}

/** `sessions` v2 devices lose their server to a restart on the same port, and come back. */
export async function stormScenario(runtime: Runtime, p: FleetParams, add: Add, progress: (m: string) => void): Promise<void> {
  // The server in a session of its own, apart from its 4 device processes (procs.ts: autogroups).
  let server = await startServer(runtime, ["--kdf", "pool", "--threads", "1", "--max-handshaking", "512"], undefined, { ownSession: true });
  const port = server.port;
  const devices = await startDevices("v2", port, p.sessions, p.deviceProcs, ["--reconnect"]);
  try {
    await server.stop();
    server = await startServer(runtime, ["--kdf", "pool", "--threads", "1", "--max-handshaking", "512", "--port", String(port)], undefined, { ownSession: true });
    await server.command("reset");
    const t0 = performance.now();
    // The devices give up waiting after their --storm-timeout (300 s), before this does.
    const r = await Promise.all(devices.map((d) => d.command("storm", LOAD_TIMEOUT + 60_000)));
    const wall = performance.now() - t0;
    // The server's event loop during the storm: it sheds (busy, evictions) rather than queueing.
    const eld = await server.command("report");
    add({ scenario: `fleet-reconnect-${p.sessions}`, runtime, protocol: "v2", metric: "server eld p99", unit: "ms", samples: [eld.eldP99Ms!] });
    add({ scenario: `fleet-reconnect-${p.sessions}`, runtime, protocol: "v2", metric: "server eld max", unit: "ms", samples: [eld.eldMaxMs!] });
    // The longest gap split into the loop thread's own CPU and its wait for a CPU (Linux; loop-stalls.ts):
    // the devices run on the same two cores, so a seconds-long delay can be starvation, not our code.
    const stalls = (eld as unknown as { loopStalls?: LoopStallReport }).loopStalls;
    if (stalls) {
      for (const [metric, v] of [["server longest gap, ran", stalls.longestGapRanMs], ["server longest gap, waited for a CPU", stalls.longestGapWaitedMs], ["server longest CPU stretch", stalls.longestRanMs], ["server run-queue wait", stalls.runQueueWaitMs]] as const) {
        add({ scenario: `fleet-reconnect-${p.sessions}`, runtime, protocol: "v2", metric, unit: "ms", samples: [v] });
      }
    }
    const times = sortNumbers(r.flatMap((x) => x.times as number[]));
    const sum = (k: string) => r.reduce((n, x) => n + (x[k] as number), 0);
    const scenario = `fleet-reconnect-${p.sessions}`;
    for (const [metric, v] of [["p50", percentile(times, 50)], ["p99", percentile(times, 99)], ["max", times.at(-1) ?? NaN]] as const) {
      add({ scenario, runtime, protocol: "v2", metric: `back after restart ${metric}`, unit: "ms", value: v, samples: [v] });
    }
    add({ scenario, runtime, protocol: "v2", metric: "re-established", unit: "count", samples: [times.length] });
    add({ scenario, runtime, protocol: "v2", metric: "refused busy and retried", unit: "count", samples: [sum("busy")] });
    add({ scenario, runtime, protocol: "v2", metric: "other failures retried", unit: "count", samples: [sum("retried")] });
    add({ scenario, runtime, protocol: "v2", metric: "gave up", unit: "count", samples: [sum("failed") + sum("pending")] });
    const { ok } = await checkAll(devices);
    add({ scenario, runtime, protocol: "v2", metric: "sessions answering", unit: "count", samples: [ok] });
    progress(`${runtime} reconnect storm of ${p.sessions}: ${times.length} back in ${(wall / 1000).toFixed(1)} s (p50 ${percentile(times, 50).toFixed(0)} ms, p99 ${percentile(times, 99).toFixed(0)} ms, max ${(times.at(-1) ?? 0).toFixed(0)} ms), ${sum("busy")} busy and ${sum("retried")} other retries, ${sum("pending") + sum("failed")} not back, ${ok} answering; server event-loop delay p99 ${eld.eldP99Ms!.toFixed(1)} ms, max ${eld.eldMaxMs!.toFixed(1)} ms`);
    if (stalls) progress(`${runtime} storm server loop: longest gap ${stalls.longestGapMs.toFixed(0)} ms (ran ${stalls.longestGapRanMs.toFixed(0)} ms, waited for a CPU ${stalls.longestGapWaitedMs.toFixed(0)} ms), longest CPU stretch ${stalls.longestRanMs.toFixed(0)} ms, run-queue wait ${(stalls.runQueueWaitMs / 1000).toFixed(1)} s in all`);
    // Why devices gave up (each a non-retryable error: should be none), and what the server shed.
    const reasons = new Map<string, number>();
    for (const x of r) for (const [why, k] of Object.entries((x.gaveUp ?? {}) as Record<string, number>)) reasons.set(why, (reasons.get(why) ?? 0) + k);
    if (reasons.size) progress(`${runtime} storm: gave up: ${[...reasons].map(([why, k]) => `${k} × ${why}`).join("; ")}`);
    const shed = eld as unknown as { handshakesFailed?: Record<string, number>; evictions?: number; busyRefusals?: number; refusedAtAccept?: number };
    progress(`${runtime} storm server: handshakes failed ${JSON.stringify(shed.handshakesFailed ?? {})}, ${shed.evictions ?? 0} evicted, ${shed.busyRefusals ?? 0} refused busy at the cap, ${shed.refusedAtAccept ?? 0} refused at accept`);
  } finally {
    await Promise.all(devices.map((d) => d.stop()));
    await server.stop();
  }
}

/** Handshakes/s (16 concurrent) and v2 echo MB/s at 16 KiB against 1 and 2 server processes on one port. */
export async function workersScenario(runtime: Runtime, p: FleetParams, add: Add, progress: (m: string) => void): Promise<void> {
  for (const workers of [1, 2]) {
    const first = await startServer(runtime, ["--kdf", "pool", "--threads", "1", "--reuse-port"]);
    const rest = await Promise.all(Array.from({ length: workers - 1 }, () => startServer(runtime, ["--kdf", "pool", "--threads", "1", "--reuse-port", "--port", String(first.port)])));
    try {
      const common = ["--port", String(first.port), "--duration", String(p.duration), "--warmup", String(p.warmup), "--reps", String(p.reps)];
      // Two load processes, so that the load generator is not the one-core bottleneck it would be alone.
      const rate = await Promise.all([0, 1].map(() => runLoad(runtime, ["--scenario", "rate", "--protocol", "v2", "--concurrency", "8", ...common], LOAD_TIMEOUT)));
      const hs = median(rate[0]!.samples as number[]) + median(rate[1]!.samples as number[]);
      add({ scenario: `fleet-workers-${workers}`, runtime, protocol: "v2", metric: "handshakes/s", unit: "1/s", samples: [hs] });
      const size = 16384;
      const echo = await Promise.all([0, 1].map(() => runLoad(runtime, ["--scenario", "throughput", "--protocol", "v2", "--size", String(size), "--window", "16", ...common], LOAD_TIMEOUT)));
      const mbps = echo.reduce((n, r) => n + (median(r.samples as number[]) * size) / 1e6, 0);
      add({ scenario: `fleet-workers-${workers}`, runtime, protocol: "v2", size, metric: "echo", unit: "MB/s", samples: [mbps] });
      progress(`${runtime} --workers ${workers}: ${hs.toFixed(0)} handshakes/s, echo 16 KiB ${mbps.toFixed(1)} MB/s`);
    } finally {
      await Promise.all([first, ...rest].map((s) => s.stop()));
    }
  }
}
