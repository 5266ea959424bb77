/**
 * The bench: turbo run bench (or bun run bench) [-- --quick] [--runtimes bun,node] [--out DIR]
 *
 * Each scenario runs for the Bun build and the Node build, server and load generator in separate
 * processes on loopback, next to raw TCP and node:tls TLS 1.3 baselines in the same runtime. Writes
 * a JSON report, a Markdown summary and an SVG chart to bench/results/, and prints the summary.
 */
import { execSync } from "node:child_process";
import { cpus } from "node:os";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT, type Runtime, type ServerProc, profileInto, profiling, runLoad, runScript, startServer, version } from "./procs.ts";
import { summarise } from "./profile-summary.ts";
import { REPORTED, type Report, type ResultRow, type Protocol, VERSIONS } from "./report-types.ts";
import { isRegisteredProtocol } from "@nstp/core";
import { median, percentile, sortNumbers, spread } from "./stats.ts";
import { renderMarkdown } from "./markdown.ts";
import { renderSvg } from "./svg.ts";
import { hyperfine } from "./hyperfine.ts";
import { type StoreName, haproxyBinary, prepareStores, startHaproxy } from "./stores.ts";
import { densityScenario, stormScenario, workersScenario } from "./fleet.ts";
import { postgresBinDir } from "@nstp/testkit";

const postgresInstalled = postgresBinDir() !== undefined;

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    runtimes: { type: "string", default: "bun,node" },
    out: { type: "string", default: join(ROOT, "bench", "results") },
    /**
     * Comma-separated groups to run (latency,rate,echo,flood,stalled,noble,cold,placement,curve,fleet,stores,hyperfine);
     * default all. `storm` runs the fleet group's reconnect storm alone.
     */
    only: { type: "string" },
    /** Backends to run the echo scenarios with: native, noble, or both (default). */
    crypto: { type: "string", default: "native,noble" },
    /**
     * CPU profiles of the echo group's secure runs at PROFILE_SIZES (a server of their own, and the
     * load generator), written to OUT/profiles-DATE/ with a summary of their top frames.
     */
    profile: { type: "boolean", default: false },
  },
  strict: true,
});

const QUICK = values.quick!;
const P = QUICK
  ? { duration: 0.2, warmup: 0.1, reps: 1, echoReps: 1, echoDuration: 0.2, latencySamples: 10, coldSamples: 2, coldUsers: 8, sizes: [64, 1024, 16384, 61440], rttSizes: [64], floodSeconds: 1, floodConns: 2000, nobleSizes: [1024], stalledSeconds: 4, stalledConns: 600, joinSamples: 3, storeUsers: 100, fleetSessions: 300, fleetCapacity: 400, fleetProcs: 2 }
  : { duration: 2, warmup: 0.5, reps: 3, echoReps: 5, echoDuration: 1.5, latencySamples: 60, coldSamples: 8, coldUsers: 64, sizes: [64, 1024, 16384, 61440], rttSizes: [64, 1024, 16384, 61440], floodSeconds: 5, floodConns: 2000, nobleSizes: [64, 1024, 16384, 61440], stalledSeconds: 12, stalledConns: 2000, joinSamples: 20, storeUsers: 5000, fleetSessions: 10_000, fleetCapacity: 15_000, fleetProcs: 4 };
const LOAD_TIMEOUT = 120_000;
const runtimes = values.runtimes!.split(",") as Runtime[];
const only = values.only?.split(",");
const wants = (group: string) => !only || only.includes(group);
const backends = values.crypto!.split(",");
/** Messages in flight: about 256 KiB of payload, at least 16, the same for every protocol. */
const windowFor = (size: number) => Math.min(4096, Math.max(16, Math.ceil((256 * 1024) / size)));
const results: ResultRow[] = [];
const started = Date.now();
const startStamp = new Date(started).toISOString().replace(/[:.]/g, "-");
/** The sizes `--profile` profiles at (issue 15: 1 KiB and 16 KiB). */
const PROFILE_SIZES = [1024, 16384];
const profileDir = join(values.out!, `profiles-${startStamp}`);
if (values.profile) {
  mkdirSync(profileDir, { recursive: true });
  profileInto(profileDir);
}

function progress(msg: string): void {
  process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${msg}\n`);
}

function add(row: Omit<ResultRow, "value"> & { value?: number }): void {
  const value = row.value ?? median(row.samples);
  results.push({ ...row, value });
}

const load = (runtime: Runtime, args: (string | number)[], profileName?: string) => runLoad(runtime, args.map(String), LOAD_TIMEOUT, profileName);
const common = () => ["--duration", P.duration, "--warmup", P.warmup, "--reps", P.reps];

async function withServer<T>(runtime: Runtime, args: string[], fn: (s: ServerProc) => Promise<T>, profileName?: string): Promise<T> {
  const s = await startServer(runtime, args, profileName);
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

async function latencyScenarios(runtime: Runtime, ports: Record<Protocol, number>) {
  for (const protocol of REPORTED) {
    for (const cold of isRegisteredProtocol(protocol) ? [false, true] : [false]) {
      const n = cold ? P.coldSamples : P.latencySamples;
      const r = await load(runtime, ["--scenario", "latency", "--protocol", protocol, "--port", ports[protocol], "--samples", n, ...(cold ? ["--cold"] : [])]);
      const s = sortNumbers(r.samples as number[]);
      const scenario = cold ? "handshake-latency-cold" : "handshake-latency-warm";
      for (const [metric, p] of [["p50", 50], ["p95", 95], ["p99", 99]] as const) {
        add({ scenario, runtime, protocol, metric, value: percentile(s, p), unit: "ms", samples: s });
      }
      progress(`${runtime} ${scenario} ${protocol}: p50 ${percentile(s, 50).toFixed(2)} ms`);
    }
  }
}

async function rateScenarios(runtime: Runtime, ports: Record<Protocol, number>, server: ServerProc) {
  for (const c of [16, 64]) {
    // Raw TCP has no handshake to rate.
    for (const protocol of REPORTED.filter((p) => p !== "tcp")) {
      if (protocol !== "tls") await server.command("reset");
      const r = await load(runtime, ["--scenario", "rate", "--protocol", protocol, "--port", ports[protocol], "--concurrency", c, ...common()]);
      add({ scenario: `handshake-rate-c${c}`, runtime, protocol, metric: "handshakes/s", unit: "1/s", samples: r.samples as number[] });
      if (protocol !== "tls") {
        const e = await server.command("report");
        add({ scenario: `handshake-rate-c${c}`, runtime, protocol, metric: "server eld p99", unit: "ms", samples: [e.eldP99Ms!] });
        add({ scenario: `handshake-rate-c${c}`, runtime, protocol, metric: "server eld max", unit: "ms", samples: [e.eldMaxMs!] });
      }
      progress(`${runtime} handshake rate c${c} ${protocol}: ${median(r.samples as number[]).toFixed(0)}/s`);
    }
  }
}

async function coldScenarios(runtime: Runtime) {
  const rate = await load(runtime, ["--scenario", "pbkdf2-rate", "--users", P.coldUsers]);
  add({ scenario: "pbkdf2-pool", runtime, protocol: "v2", metric: "derivations/s", unit: "1/s", samples: rate.samples as number[] });
  progress(`${runtime} pool PBKDF2: ${median(rate.samples as number[]).toFixed(1)}/s`);
  for (const kdf of ["pool", "inline"]) {
    await withServer(runtime, ["--kdf", kdf], async (server) => {
      for (const protocol of VERSIONS) {
        await server.command("reset");
        const r = await load(runtime, ["--scenario", "cold", "--protocol", protocol, "--port", server.port, "--users", P.coldUsers, "--run-id", `${protocol}${Date.now()}`]);
        const e = await server.command("report");
        const scenario = `handshake-cold-${P.coldUsers}-${kdf}`;
        add({ scenario, runtime, protocol, metric: "handshakes/s", unit: "1/s", samples: r.samples as number[] });
        add({ scenario, runtime, protocol, metric: "server eld p99", unit: "ms", samples: [e.eldP99Ms!] });
        add({ scenario, runtime, protocol, metric: "server eld max", unit: "ms", samples: [e.eldMaxMs!] });
        progress(`${runtime} cold ${P.coldUsers} users, ${kdf} derivation, ${protocol}: ${median(r.samples as number[]).toFixed(1)}/s, eld p99 ${e.eldP99Ms!.toFixed(1)} ms max ${e.eldMaxMs!.toFixed(1)} ms`);
      }
    });
  }
}

/**
 * One core sealing and opening AES-256-GCM (native backend, inline) at each echo size, in this
 * runtime and this run: A of the crypto-inclusive ceiling (issue 15).
 */
async function aeadOneCore(runtime: Runtime): Promise<Map<number, number>> {
  const r = await runScript(runtime, "placement.ts", ["--ms", QUICK ? "100" : "400", "--backends", "native", "--inline-only", "--sizes", P.sizes.join(",")], LOAD_TIMEOUT);
  const rates = new Map<number, number>();
  for (const x of (r as { results: { size: number; inlineMBps: number }[] }).results) {
    add({ scenario: "aead-one-core", runtime, protocol: "v2", size: x.size, metric: "seal+open", unit: "MB/s", samples: [x.inlineMBps] });
    rates.set(x.size, x.inlineMBps);
  }
  return rates;
}

/**
 * The echo's crypto-inclusive ceiling: each message is sealed and opened twice (request and reply),
 * spread over the two cores that also carry the raw TCP echo at R MB/s, so about 1 / (1/R + 1/A).
 */
const echoCeiling = (rawTcp: number, aead: number) => 1 / (1 / rawTcp + 1 / aead);

async function throughputScenarios(runtime: Runtime, ports: Record<Protocol, number>, crypto = "native", aead = "auto") {
  const sizes = crypto === "native" ? P.sizes : P.nobleSizes;
  const oneCore = crypto === "native" ? await aeadOneCore(runtime) : undefined;
  for (const size of sizes) {
    const runs: { protocol: Protocol; window: number; scenario: string }[] = crypto === "native"
      ? [
          { protocol: "v3", window: windowFor(size), scenario: "echo-pipelined" },
          { protocol: "v2", window: windowFor(size), scenario: "echo-pipelined" },
          { protocol: "legacy", window: windowFor(size), scenario: "echo-pipelined" },
          { protocol: "legacy", window: 1, scenario: "echo-lockstep" },
          { protocol: "tcp", window: windowFor(size), scenario: "echo-pipelined" },
          { protocol: "tls", window: windowFor(size), scenario: "echo-pipelined" },
          ...(P.rttSizes.includes(size)
            ? (["v3", "v2", "tcp", "tls"] as Protocol[]).map((protocol) => ({ protocol, window: 1, scenario: "echo-lockstep" }))
            : []),
        ]
      : [{ protocol: "v2", window: windowFor(size), scenario: aead === "inline" ? "echo-pipelined-noble-inline" : "echo-pipelined-noble" }];
    // Repetitions interleaved: rep 1 of every run, then rep 2 of every run, and so on, each its own
    // load process (warmed up) against the same server. The host is shared, and a burst of someone
    // else's work used to land on one protocol's whole block of repetitions and skew its ratio to the
    // others (session 7's full run: 16-216 % spread at Node's 1 KiB, v3 0.62-1.95x v2 on the same
    // transport); now it costs each protocol at most one repetition, and the median drops it.
    const got = runs.map(() => ({ msgs: [] as number[], p50: [] as number[], p99: [] as number[] }));
    for (let rep = 0; rep < P.echoReps; rep++) {
      for (const [i, run] of runs.entries()) {
        // Profiled runs get a server of their own, so that its profile holds this run alone.
        const profiled = profiling() && crypto === "native" && run.scenario === "echo-pipelined" && PROFILE_SIZES.includes(size) && ["v2", "v3", "legacy"].includes(run.protocol);
        const name = `${runtime}-${run.protocol}-${size}${P.echoReps > 1 ? `-rep${rep + 1}` : ""}`;
        const measure = (port: number) =>
          load(runtime, ["--scenario", "throughput", "--protocol", run.protocol, "--port", port, "--size", size, "--window", run.window, "--crypto", crypto, "--aead", aead, "--duration", P.echoDuration, "--warmup", P.warmup, "--reps", 1], profiled ? `client-${name}` : undefined);
        const r = profiled ? await withServer(runtime, ["--kdf", "pool"], (s) => measure(s.port), `server-${name}`) : await measure(ports[run.protocol]);
        got[i]!.msgs.push(...(r.samples as number[]));
        const rtt = r.rtts as { p50: number; p99: number; n: number } | undefined;
        if (rtt) {
          got[i]!.p50.push(rtt.p50);
          got[i]!.p99.push(rtt.p99);
        }
        if (r.cipher) tlsCipher[runtime] = String(r.cipher);
        if (rep === P.echoReps - 1) {
          const msgs = got[i]!.msgs;
          progress(`${runtime} ${run.scenario} ${run.protocol} w${run.window} ${size} B: ${((median(msgs) * size) / 1e6).toFixed(1)} MB/s, ${median(msgs).toFixed(0)} msg/s (median of ${msgs.length})${profiled ? " (profiled)" : ""}`);
        }
      }
    }
    for (const [i, run] of runs.entries()) {
      const { msgs, p50, p99 } = got[i]!;
      add({ scenario: run.scenario, runtime, protocol: run.protocol, size, metric: "throughput", unit: "msg/s", samples: msgs });
      add({ scenario: run.scenario, runtime, protocol: run.protocol, size, metric: "throughput", unit: "MB/s", samples: msgs.map((m) => (m * size) / 1e6) });
      // Each repetition's p50 and p99 of its own round trips; the row's value is their median.
      if (p50.length) {
        add({ scenario: run.scenario, runtime, protocol: run.protocol, size, metric: "rtt p50", unit: "ms", samples: p50 });
        add({ scenario: run.scenario, runtime, protocol: run.protocol, size, metric: "rtt p99", unit: "ms", samples: p99 });
      }
    }
    const a = oneCore?.get(size);
    const raw = results.find((x) => x.runtime === runtime && x.scenario === "echo-pipelined" && x.protocol === "tcp" && x.size === size && x.unit === "MB/s")?.value;
    if (a !== undefined && raw !== undefined) {
      const ceiling = echoCeiling(raw, a);
      add({ scenario: "echo-ceiling", runtime, protocol: "v2", size, metric: "1/(1/R + 1/A)", unit: "MB/s", samples: [ceiling] });
      const fractions = (["v3", "v2", "legacy", "tls"] as Protocol[]).map((p) => {
        const v = results.find((x) => x.runtime === runtime && x.scenario === "echo-pipelined" && x.protocol === p && x.size === size && x.unit === "MB/s")?.value;
        return `${p} ${v === undefined ? "–" : (v / ceiling).toFixed(2)}`;
      });
      progress(`${runtime} ${size} B ceiling: raw TCP ${raw.toFixed(0)} MB/s, one core's AES-256-GCM seal+open ${a.toFixed(0)} MB/s, ceiling ${ceiling.toFixed(0)} MB/s; of it: ${fractions.join(", ")}`);
    }
  }
}

async function floodScenario(runtime: Runtime, server: ServerProc) {
  await server.command("reset");
  const [ping, flood] = await Promise.all([
    load(runtime, ["--scenario", "ping", "--protocol", "v2", "--port", server.port, "--duration", P.floodSeconds]),
    load(runtime, ["--scenario", "flood", "--port", server.port, "--concurrency", P.floodConns, "--duration", P.floodSeconds]),
  ]);
  const e = await server.command("report");
  const s = sortNumbers(ping.samples as number[]);
  const scenario = `flood-${P.floodConns}-unauthenticated`;
  add({ scenario, runtime, protocol: "v2", metric: "ping rtt p99", unit: "ms", value: percentile(s, 99), samples: s });
  add({ scenario, runtime, protocol: "v2", metric: "ping rtt max", unit: "ms", value: s[s.length - 1]!, samples: s });
  add({ scenario, runtime, protocol: "v2", metric: "server eld p99", unit: "ms", samples: [e.eldP99Ms!] });
  add({ scenario, runtime, protocol: "v2", metric: "server rss", unit: "MB", samples: [e.rssMB!] });
  progress(`${runtime} flood of ${P.floodConns} (opened in ${(flood.samples as number[])[0]!.toFixed(0)} ms): ping p99 ${percentile(s, 99).toFixed(2)} ms over ${s.length} pings`);
}

/**
 * A new honest v2 client and a new legacy client, each a handshake and an echo, while stalled
 * handshakes from the same address fill the handshake cap (the server's default, 512) and are
 * reopened as the server closes them (docs/PROTOCOL.md, "Admission"). Target: under 1 s each.
 */
async function stalledFloodScenario(runtime: Runtime, server: ServerProc) {
  await server.command("reset");
  const settle = 1.5; // seconds for the flood to be fully open before the first newcomer
  const [join, flood] = await Promise.all([
    load(runtime, ["--scenario", "join", "--port", server.port, "--warmup", settle, "--samples", P.joinSamples]),
    load(runtime, ["--scenario", "stalled-flood", "--port", server.port, "--concurrency", P.stalledConns, "--duration", P.stalledSeconds]),
  ]);
  const scenario = `stalled-flood-${P.stalledConns}`;
  for (const protocol of ["v2", "legacy"] as const) {
    const s = sortNumbers(join[protocol] as number[]);
    add({ scenario, runtime, protocol, metric: "handshake+echo p50", unit: "ms", value: percentile(s, 50), samples: s });
    add({ scenario, runtime, protocol, metric: "handshake+echo max", unit: "ms", value: s[s.length - 1]!, samples: s });
  }
  add({ scenario, runtime, protocol: "v2", metric: "flood connections opened", unit: "count", samples: [flood.opened as number] });
  progress(`${runtime} ${P.stalledConns} stalled handshakes (${flood.opened} opened): new v2 client max ${Math.max(...(join.v2 as number[])).toFixed(1)} ms, legacy max ${Math.max(...(join.legacy as number[])).toFixed(1)} ms`);
}

async function placementScenario(runtime: Runtime) {
  const r = await runPlacement(runtime);
  for (const x of r) {
    add({ scenario: `aead-${x.backend}-inline`, runtime, protocol: "v2", size: x.size, metric: "seal+open", unit: "MB/s", samples: [x.inlineMBps] });
    add({ scenario: `aead-${x.backend}-inline`, runtime, protocol: "v2", size: x.size, metric: "event-loop time per frame", unit: "us", samples: [x.inlineUsPerFrame] });
    add({ scenario: `aead-${x.backend}-pool`, runtime, protocol: "v2", size: x.size, metric: "seal+open", unit: "MB/s", samples: [x.poolMBps!] });
    add({ scenario: `aead-${x.backend}-pool`, runtime, protocol: "v2", size: x.size, metric: "hand-over round trip", unit: "us", samples: [x.poolHandoverUs!] });
  }
  progress(`${runtime} AEAD placement measured (${r.length} points)`);
}

async function runPlacement(runtime: Runtime) {
  const r = await runScript(runtime, "placement.ts", ["--ms", QUICK ? "100" : "400"], LOAD_TIMEOUT);
  return (r as { results: { backend: string; size: number; inlineMBps: number; inlineUsPerFrame: number; poolMBps?: number; poolHandoverUs?: number }[] }).results;
}

/**
 * v3's curve work per handshake in this runtime (bench/src/v3-curve.ts): CPU per handshake of the
 * server's curve step, its whole machine and the client's; and the placement figures behind
 * crypto/placement.ts (one job inline vs through the pool, 64 at once with the loop's longest gap).
 */
async function curveScenario(runtime: Runtime) {
  const r = (await runScript(runtime, "v3-curve.ts", ["--ms", QUICK ? "400" : "2000"], LOAD_TIMEOUT)) as Record<string, number> & {
    placement: { inlineJobMs: number; poolJobMs: number; storm64Inline: { wallMs: number; maxLoopLagMs: number }; storm64Pool: { wallMs: number; maxLoopLagMs: number } };
  };
  const cpu = (metric: string, us: number) => add({ scenario: "v3-curve", runtime, protocol: "v3", metric, unit: "ms", samples: [us / 1000] });
  cpu("server curve CPU per handshake", r.serverCurveUs!);
  cpu("server curve CPU, unknown user", r.serverCurveFakeUs!);
  cpu("server machine CPU per handshake", r.serverMachineUs!);
  cpu("client curve CPU per handshake", r.clientCurveUs!);
  const pl = r.placement;
  const row = (scenario: string, metric: string, value: number) => add({ scenario, runtime, protocol: "v3", metric, unit: "ms", samples: [value] });
  row("v3-curve-inline", "one job, wall", pl.inlineJobMs);
  row("v3-curve-pool", "one job, wall", pl.poolJobMs);
  row("v3-curve-inline", "64 jobs, wall", pl.storm64Inline.wallMs);
  row("v3-curve-inline", "64 jobs, loop's longest gap", pl.storm64Inline.maxLoopLagMs);
  row("v3-curve-pool", "64 jobs, wall", pl.storm64Pool.wallMs);
  row("v3-curve-pool", "64 jobs, loop's longest gap", pl.storm64Pool.maxLoopLagMs);
  progress(`${runtime} v3 server curve ${(r.serverCurveUs! / 1000).toFixed(2)} ms CPU per handshake; 64 jobs: loop gap ${pl.storm64Inline.maxLoopLagMs} ms inline, ${pl.storm64Pool.maxLoopLagMs} ms in the pool`);
}

/**
 * Handshakes/s with each credential store: a fresh server per store, every store user once (cold:
 * each record read from the store), then once more (warm: cached). Then warm handshakes through
 * HAProxy with send-proxy-v2 beside the same server's direct ones.
 */
async function storeScenarios(runtime: Runtime, stores: Awaited<ReturnType<typeof prepareStores>>) {
  for (const [name, spec] of Object.entries(stores.specs) as [StoreName, string][]) {
    await withServer(runtime, ["--users", spec], async (server) => {
      // The server's code warmed up on the bench user alone, so that "cold" measures the store.
      await load(runtime, ["--scenario", "rate", "--protocol", "v2", "--port", server.port, "--concurrency", 16, "--duration", P.warmup, "--warmup", P.warmup, "--reps", 1]);
      for (const pass of ["cold", "warm"]) {
        await server.command("reset");
        const r = await load(runtime, ["--scenario", "store-users", "--port", server.port, "--users", P.storeUsers, "--concurrency", 16]);
        const e = await server.command("report");
        const scenario = `store-${name}-${pass}`;
        add({ scenario, runtime, protocol: "v2", metric: "handshakes/s", unit: "1/s", samples: r.samples as number[] });
        add({ scenario, runtime, protocol: "v2", metric: "server eld p99", unit: "ms", samples: [e.eldP99Ms!] });
        progress(`${runtime} ${P.storeUsers} users from ${name}, ${pass}: ${median(r.samples as number[]).toFixed(0)}/s`);
      }
    });
  }
  const bin = haproxyBinary();
  if (!bin) return;
  for (const via of ["direct", "haproxy"]) {
    await withServer(runtime, via === "haproxy" ? ["--trusted-proxies", "127.0.0.1"] : [], async (server) => {
      const hap = via === "haproxy" ? await startHaproxy(bin, [server.port]) : undefined;
      try {
        const r = await load(runtime, ["--scenario", "rate", "--protocol", "v2", "--port", hap?.port ?? server.port, "--concurrency", 16, ...common()]);
        add({ scenario: `handshake-rate-c16-${via}`, runtime, protocol: "v2", metric: "handshakes/s", unit: "1/s", samples: r.samples as number[] });
        progress(`${runtime} handshake rate c16 v2 ${via}: ${median(r.samples as number[]).toFixed(0)}/s`);
      } finally {
        await hap?.stop();
      }
    });
  }
}

const tlsCipher: Partial<Record<Runtime, string>> = {};

async function benchRuntime(runtime: Runtime) {
  progress(`${runtime}: starting servers`);
  const nstp = await startServer(runtime, ["--kdf", "pool"]);
  const tcp = await startServer(runtime, ["--protocol", "tcp"]);
  const tls = await startServer(runtime, ["--protocol", "tls"]);
  // Every version on the one nstp port (dispatch), each baseline on its own.
  const ports = { ...Object.fromEntries(VERSIONS.map((v) => [v, nstp.port])), tcp: tcp.port, tls: tls.port } as Record<Protocol, number>;
  try {
    if (wants("latency")) await latencyScenarios(runtime, ports);
    if (wants("rate")) await rateScenarios(runtime, ports, nstp);
    if (wants("echo") && backends.includes("native")) await throughputScenarios(runtime, ports);
    if (wants("flood")) await floodScenario(runtime, nstp);
    if (wants("stalled")) await withServer(runtime, ["--kdf", "pool", "--max-handshaking", "512"], (s) => stalledFloodScenario(runtime, s));
  } finally {
    await Promise.all([nstp.stop(), tcp.stop(), tls.stop()]);
  }
  if (wants("noble") && backends.includes("noble")) {
    for (const aead of ["auto", "inline"]) {
      await withServer(runtime, ["--crypto", "noble", "--kdf", "pool", "--aead", aead], (noble) =>
        throughputScenarios(runtime, { ...ports, v2: noble.port, legacy: noble.port }, "noble", aead));
    }
  }
  if (wants("cold")) await coldScenarios(runtime);
  if (wants("placement")) await placementScenario(runtime);
  if (wants("curve")) await curveScenario(runtime);
  if (wants("fleet") || wants("storm")) {
    const fleet = { sessions: P.fleetSessions, capacity: P.fleetCapacity, deviceProcs: P.fleetProcs, duration: P.duration, warmup: P.warmup, reps: P.reps };
    if (wants("fleet")) await densityScenario(runtime, fleet, add, progress);
    await stormScenario(runtime, fleet, add, progress);
    if (wants("fleet")) await workersScenario(runtime, fleet, add, progress);
  }
}

const commit = (() => {
  try {
    return execSync("git rev-parse --short HEAD", { cwd: ROOT, encoding: "utf8" }).trim() + (execSync("git status --porcelain -- . :!bench/results", { cwd: ROOT, encoding: "utf8" }).trim() ? "+dirty" : "");
  } catch {
    return "unknown";
  }
})();

for (const runtime of runtimes) await benchRuntime(runtime);
const storeNotes: string[] = [];
if (wants("stores")) {
  const stores = await prepareStores(P.storeUsers);
  storeNotes.push(...stores.notes);
  if (!haproxyBinary()) storeNotes.push("HAProxy not installed: its rows are missing");
  try {
    for (const runtime of runtimes) await storeScenarios(runtime, stores);
  } finally {
    await stores.close();
  }
}
const hf = wants("hyperfine") ? await hyperfine(runtimes, QUICK, progress) : { rows: [], note: "skipped (--only)" };
results.push(...hf.rows);

const report: Report = {
  env: {
    runtimes: Object.fromEntries(await Promise.all(runtimes.map(async (r) => [r, await version(r)] as const))),
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    commit,
    date: new Date().toISOString(),
    options: { quick: QUICK, ...P },
    tlsCipher,
    hyperfine: hf.note,
    stores: storeNotes.join("; "),
    durationSeconds: Math.round((Date.now() - started) / 1000),
  },
  results,
};

const problems = only || backends.length < 2 ? [] : checkComplete(report);
mkdirSync(values.out!, { recursive: true });
const stamp = `${report.env.date.replace(/[:.]/g, "-")}${QUICK ? "-quick" : ""}`;
const base = join(values.out!, `bench-${stamp}`);
writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + "\n");
const md = renderMarkdown(report, `${base.split("/").at(-1)}.svg`);
writeFileSync(`${base}.md`, md);
writeFileSync(`${base}.svg`, renderSvg(report));
process.stdout.write(md + "\n");
if (values.profile) {
  const files = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile")).sort();
  const summary = [`# CPU profiles, commit ${commit}`, "", "Echo runs at 1 KiB and 16 KiB; `server-*` is the nstp server, `client-*` the load generator (the client library).", ""];
  for (const f of files) summary.push(`## ${f}`, "", ...summarise(JSON.parse(readFileSync(join(profileDir, f), "utf8")), 15), "");
  writeFileSync(join(profileDir, "summary.md"), summary.join("\n"));
  progress(`profiles: ${files.length} in ${profileDir} (summary.md)`);
}
const repeated = results.filter((r) => r.unit === "MB/s" || r.unit === "1/s");
progress(`report: ${base}.json (.md, .svg); largest spread across repetitions ${(Math.max(0, ...repeated.map((r) => spread(r.samples))) * 100).toFixed(0)}%`);
if (problems.length) {
  console.error(`bench incomplete:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}

/** Every scenario present for every runtime, every value finite: what CI checks. */
function checkComplete(r: Report): string[] {
  const out: string[] = [];
  for (const runtime of runtimes) {
    for (const scenario of ["handshake-latency-warm", "handshake-latency-cold", "handshake-rate-c16", "handshake-rate-c64", "echo-pipelined", "echo-lockstep", "echo-pipelined-noble", "echo-pipelined-noble-inline", `flood-${P.floodConns}-unauthenticated`, `stalled-flood-${P.stalledConns}`, "pbkdf2-pool", `handshake-cold-${P.coldUsers}-pool`, `handshake-cold-${P.coldUsers}-inline`, "aead-native-inline", "aead-noble-pool", "v3-curve", "v3-curve-inline", "v3-curve-pool", `fleet-idle-${P.fleetSessions}`, `fleet-reconnect-${P.fleetSessions}`, `fleet-capacity-${P.fleetCapacity}`, "fleet-workers-1", "fleet-workers-2"]) {
      if (!r.results.some((x) => x.runtime === runtime && x.scenario === scenario)) out.push(`${runtime}: ${scenario} missing`);
    }
    for (const protocol of REPORTED) {
      for (const size of P.sizes) {
        if (!r.results.some((x) => x.runtime === runtime && x.scenario === "echo-pipelined" && x.protocol === protocol && x.size === size && x.unit === "MB/s")) {
          out.push(`${runtime}: echo ${protocol} ${size} B missing`);
        }
      }
    }
  }
  // The stores and HAProxy rows are required where their packages are installed.
  for (const runtime of runtimes) {
    const want = ["store-json-cold", "store-json-warm", "store-sqlite-cold", "store-sqlite-warm"];
    if (postgresInstalled) want.push("store-postgres-cold", "store-postgres-warm");
    if (haproxyBinary()) want.push("handshake-rate-c16-direct", "handshake-rate-c16-haproxy");
    for (const scenario of want) if (!r.results.some((x) => x.runtime === runtime && x.scenario === scenario)) out.push(`${runtime}: ${scenario} missing`);
  }
  for (const x of r.results) if (!Number.isFinite(x.value)) out.push(`${x.runtime} ${x.scenario} ${x.protocol} ${x.metric}: ${x.value}`);
  return out;
}
