/**
 * The bench's server process: our server (both protocols), or a raw TCP or node:tls TLS 1.3 echo
 * baseline, on loopback. Prints "listening on HOST:PORT", then answers commands on stdin, one per
 * line: "reset" (restart the event-loop delay histogram) and "report" (print one JSON line).
 *
 * Every server echoes: our server's handler returns the message itself, so the secure protocols and
 * the baselines move the same bytes.
 */
import { pbkdf2Sync } from "node:crypto";
import { appendFileSync, readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import * as tls from "node:tls";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { type CryptoBackend, type LogLevel, type Wire, legacy, utf8 } from "@nstp/core";
import { createLogger, defaultTransport, getBackend, runtimeVersion } from "@nstp/core/node";
import { CryptoPool, curvePlacement } from "@nstp/core/pool";
import { type CredentialStore, type KeyStore, PasswordKeyStore, type ServerStats, StaticKeyStore, loadUsersFile, openCredentialStore, startServer, storeKind } from "@nstp/server";
import { Deframer, frame } from "./framing.ts";
import { startLoopStallMonitor } from "@nstp/testkit";
import { BENCH_PASSWORD, BENCH_USER, coldPassword } from "./users.ts";

const { values } = parseArgs({
  options: {
    protocol: { type: "string", default: "nstp" },
    crypto: { type: "string", default: "native" },
    /** Where the server derives keys of cold users: in the worker pool, or inline on the event loop. */
    kdf: { type: "string", default: "pool" },
    threads: { type: "string" },
    /** v2 AES-GCM placement: "auto" (the measured placement, with the pool) or "inline" (no pool). */
    aead: { type: "string", default: "auto" },
    /** Handshakes at most (4,096: the throughput scenarios open many at once); the stalled flood uses the default 512. */
    "max-handshaking": { type: "string", default: "4096" },
    /** Serve from this credential store (a users file, users.db, postgres://...) instead of the built-in users. */
    users: { type: "string" },
    /** Comma-separated trusted proxies: the PROXY protocol on the listener. */
    "trusted-proxies": { type: "string" },
    /** A fixed port (default 0: any); with --reuse-port several servers share it (the fleet bench's --workers). */
    port: { type: "string", default: "0" },
    "reuse-port": { type: "boolean", default: false },
  },
  strict: true,
});

const FIXTURES = new URL("../fixtures/", import.meta.url);
const eld = monitorEventLoopDelay({ resolution: 1 });
eld.enable();
// Beside the delay: how much of the longest gap the loop's thread ran, and how much it waited for a CPU
// (a storm's devices share the machine's cores with this server: a late timer is not always our code).
const stalls = startLoopStallMonitor(10);
let pool: CryptoPool | undefined;
let store: PasswordKeyStore | undefined;
let dbStore: CredentialStore | undefined;
/** The nstp server's own counters (handshake failures by code, admission), for the report. */
let serverStats: ServerStats | undefined;

async function main(): Promise<{ host: string; port: number; close(): Promise<void> }> {
  const protocol = values.protocol!;
  if (protocol === "tls") return tlsEcho();
  if (protocol === "tcp") return tcpEcho();
  const crypto = getBackend(values.crypto!);
  const deviceSalt = legacy.DEMO_DEVICE_SALT;
  const warmKey = await crypto.pbkdf2Sha256(utf8(BENCH_PASSWORD), legacy.pskSalt(deviceSalt, utf8(BENCH_USER)), legacy.PBKDF2_ITERATIONS, 32);
  const warm = new StaticKeyStore(new Map([[BENCH_USER, warmKey]]));
  if (values.kdf === "pool") pool = new CryptoPool({ backend: crypto, threads: values.threads ? Number(values.threads) : undefined });
  // Cold users (cold-*) are derived on first use, from a password lookup, in the pool or inline.
  store = new PasswordKeyStore({
    lookup: (name) => (name.startsWith("cold-") ? coldPassword(name) : undefined),
    deviceSalt,
    crypto: values.kdf === "inline" ? inlineKdf(crypto) : crypto,
    pool,
  });
  let keys: KeyStore = {
    lookup: (name, signal) => (name === BENCH_USER ? warm.lookup(name) : store!.lookup(name, signal)),
  };
  if (values.users) {
    if (storeKind(values.users).kind === "json") keys = loadUsersFile(values.users, deviceSalt);
    else keys = dbStore = await openCredentialStore(values.users, { deviceSalt });
  }
  const server = await startServer({
    keys,
    port: Number(values.port),
    reusePort: values["reuse-port"],
    crypto,
    handler: (m) => m,
    // v2 AES-GCM goes to the pool where the measured placement says so (noble; never native).
    pool: values.aead === "inline" ? undefined : pool,
    maxHandshaking: Number(values["max-handshaking"]),
    // The bench opens thousands of connections from one address, as one user; the limiter and the
    // budgets are tested elsewhere. (v3 charges the user's guess before message 2 and refunds it at
    // message 3, so with the default budget of 20 at most 20 handshakes of one user are in flight.)
    failureLimit: { burst: 1e9, refillPerSecond: 1e9 },
    userBudget: { burst: 1e9, refillPerSecond: 1e9 },
    // Likewise one source, and the sources not yet proven, may fill the pool's queue with v3 curve
    // steps (curve-cap.ts), as before those caps.
    maxCurveStepsPerSource: pool?.maxQueue,
    maxCurveStepsUnproven: pool?.maxQueue,
    // And key lookups (lookup-gate.ts), which every handshake from a source not yet proven now holds a
    // place for, cached or not, for the store's hold: the store's own maxPending still bounds them.
    maxUncachedLookupsPerSource: Number.MAX_SAFE_INTEGER,
    maxUncachedLookupsUnproven: Number.MAX_SAFE_INTEGER,
    limits: { maxPendingMessages: 1 << 16, writeHighWaterMark: 4 << 20 },
    trustedProxies: values["trusted-proxies"]?.split(","),
    // NSTP_BENCH_LOG=FILE appends the server's debug log there, to see why sessions end (never keys or
    // plaintext: the logger has no field for them). The bench keeps the server's stderr only for errors.
    logger: process.env.NSTP_BENCH_LOG ? createLogger({ level: "debug" as LogLevel, write: (l) => appendFileSync(process.env.NSTP_BENCH_LOG!, l + "\n") }) : undefined,
  });
  serverStats = server.stats;
  return { host: server.host, port: server.port, close: async () => (await server.close(), await dbStore?.close()) };
}

/** PBKDF2 synchronously on the event loop: what "no pool" costs a server. */
function inlineKdf(crypto: CryptoBackend): CryptoBackend {
  return { ...crypto, pbkdf2Sha256: async (pw, salt, it, len) => new Uint8Array(pbkdf2Sync(pw, salt, it, len, "sha256")) };
}

async function tcpEcho() {
  const transport = await defaultTransport();
  const listener = await transport.listen({ host: "127.0.0.1", port: Number(values.port), maxConnections: 100_000 }, (wire: Wire) => {
    const deframer = new Deframer();
    return {
      data(chunk) {
        // One write per read, like the secure servers: everything answered in this read leaves together.
        const replies: Uint8Array[] = [];
        deframer.push(chunk, (m) => replies.push(m));
        if (replies.length) wire.write(frame(replies));
      },
      drain() {},
      close() {},
    };
  });
  return { host: listener.host, port: listener.port, close: () => listener.close() };
}

async function tlsEcho() {
  const server = tls.createServer({
    key: readFileSync(new URL("tls-key.pem", FIXTURES)),
    cert: readFileSync(new URL("tls-cert.pem", FIXTURES)),
    minVersion: "TLSv1.3",
    // TLS 1.3 suites are set with ciphersuites; AES-256-GCM only, like ours.
    ciphersuites: "TLS_AES_256_GCM_SHA384",
  } as tls.TlsOptions);
  server.on("secureConnection", (socket) => {
    const deframer = new Deframer();
    socket.on("data", (chunk: Buffer) => {
      const replies: Uint8Array[] = [];
      deframer.push(chunk, (m) => replies.push(m));
      if (replies.length) socket.write(frame(replies));
    });
    socket.on("error", () => socket.destroy());
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((r) => server.listen(Number(values.port), "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  return { host: "127.0.0.1", port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const running = await main();
console.log(`listening on ${running.host}:${running.port} (${runtimeVersion()})`);
// Peak resident memory since the last reset, sampled (the same way on both runtimes).
let peakRss = 0;
setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50).unref();
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line === "reset") {
    eld.reset();
    stalls?.reset();
    peakRss = process.memoryUsage().rss;
    console.log(JSON.stringify({ ok: true }));
  } else if (line === "gc") {
    // Resident memory after a full collection: what the open connections retain (the fleet bench).
    const g = globalThis as { Bun?: { gc(force: boolean): void }; gc?: () => void };
    if (g.Bun) g.Bun.gc(true);
    else g.gc?.();
    console.log(JSON.stringify({ rssMB: process.memoryUsage().rss / 1e6 }));
  } else if (line === "heap") {
    // Where the memory is (the fleet bench's density work): live objects by type after a collection.
    void heapCensus().then((r) => console.log(JSON.stringify(r)));
  } else if (line === "report") {
    console.log(JSON.stringify({
      eldP99Ms: eld.percentile(99) / 1e6,
      eldMaxMs: eld.max / 1e6,
      // Linux only (undefined elsewhere): loop-stalls.ts in @nstp/testkit.
      loopStalls: stalls?.report(),
      rssMB: process.memoryUsage().rss / 1e6,
      peakRssMB: Math.max(peakRss, process.memoryUsage().rss) / 1e6,
      derivations: store?.derivations ?? 0,
      poolCompleted: pool?.completed ?? 0,
      // Where v3's curve steps ran since the server started (packages/core/src/pool/curve.ts).
      curveJobs: { ...curvePlacement.ran },
      // Why handshakes ended without a session, and what admission shed (the fleet bench's storm).
      handshakesFailed: { ...serverStats?.handshakesFailed },
      refusedAtAccept: serverStats?.refused ?? 0,
      evictions: serverStats?.defence?.admission.evictions ?? 0,
      busyRefusals: serverStats?.defence?.admission.busyRefusals ?? 0,
    }));
  }
});
rl.on("close", async () => {
  await running.close();
  await pool?.destroy();
  process.exit(0);
});

let snapshots = 0;
/** The Nth snapshot's file, path.N (from 1): density takes one before the sessions, one with them open, one after. */
function snapshotPath(path: string): string {
  return `${path}.${++snapshots}`;
}

/** Objects by type (Bun: bun:jsc heapStats) or V8 heap statistics (Node), after a full collection; with NSTP_HEAP_SNAPSHOT=path, a heap snapshot per call, to path.1, path.2, ... */
async function heapCensus(): Promise<Record<string, unknown>> {
  const g = globalThis as { Bun?: { gc(force: boolean): void; generateHeapSnapshot?(): unknown }; gc?: () => void };
  const out: Record<string, unknown> = {};
  if (g.Bun) {
    g.Bun.gc(true);
    const { heapStats } = (await import("bun:jsc")) as { heapStats(): { objectTypeCounts: Record<string, number>; heapSize: number; heapCapacity: number; extraMemorySize: number; objectCount: number } };
    const h = heapStats();
    out.heapSize = h.heapSize;
    // Capacity: what JSC holds in blocks (live or not); extra: native memory its objects report.
    out.heapCapacity = h.heapCapacity;
    out.extraMemorySize = h.extraMemorySize;
    out.objectCount = h.objectCount;
    out.types = Object.fromEntries(Object.entries(h.objectTypeCounts).sort((a, b) => b[1] - a[1]).slice(0, 40));
    if (process.env.NSTP_HEAP_SNAPSHOT && g.Bun.generateHeapSnapshot) {
      const { writeFileSync } = await import("node:fs");
      out.snapshot = snapshotPath(process.env.NSTP_HEAP_SNAPSHOT);
      writeFileSync(out.snapshot as string, JSON.stringify(g.Bun.generateHeapSnapshot()));
    }
  } else {
    g.gc?.();
    const v8 = await import("node:v8");
    out.heap = v8.getHeapStatistics();
    out.spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((x) => [x.space_name, { size: x.space_size, used: x.space_used_size }]));
    if (process.env.NSTP_HEAP_SNAPSHOT) out.snapshot = v8.writeHeapSnapshot(snapshotPath(process.env.NSTP_HEAP_SNAPSHOT));
  }
  out.memory = process.memoryUsage();
  return out;
}
