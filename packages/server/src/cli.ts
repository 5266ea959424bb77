#!/usr/bin/env node
/**
 * nstp server CLI: bun run server -- --port N --host H --device-salt HEX --users FILE
 * (the Node build: bun run server:node -- with the same flags).
 */
import { parseArgs } from "node:util";
import { type LogFormat, type LogLevel, PROTOCOL_NAMES, parseProtocolList, fromHex, legacy, toHex, v2 } from "@nstp/core";
import { createLogger, getBackend, runtimeVersion } from "@nstp/core/node";
import { CryptoPool } from "@nstp/core/pool";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { runSupervisor } from "./supervisor.ts";
import { defaultMaxConnections } from "./capacity.ts";
import { DEFAULT_ADMISSION } from "./admission.ts";
import { type KeyStore, demoKeyStore, loadUsersFile, readUsersFile } from "./credentials.ts";
import { readFileSync } from "node:fs";
import { startServer } from "./server.ts";
import { warnIfOpenToOthers } from "./users-file.ts";
import { startMetrics, summaryFields } from "./metrics.ts";
import type { CredentialStore } from "./stores/records.ts";
import { describeStore, openCredentialStore, storeFiles, urlPasswordWarning } from "./stores/open.ts";
import { storeKind } from "./stores/schema.ts";
import { demoSaltWarning, demoUserRefusal } from "./salt-advice.ts";
import { monitorEventLoopDelay } from "node:perf_hooks";

const USAGE = `usage: server [--port N] [--host H] [--device-salt HEX] [--users FILE | --demo] [--crypto native|noble]
              [--protocols legacy,v2,v3] [--legacy on|off] [--max-message-size BYTES] [--max-message-size-v2 BYTES]
              [--handshake-timeout SECONDS] [--record-timeout SECONDS] [--log-level L] [--log-format json|pretty]
              [--metrics HOST:PORT] [--summary-interval SECONDS] [--shutdown-grace SECONDS]
              [--max-handshaking N] [--handshake-stall-ms MS] [--handshake-silent-ms MS] [--curve-steps-per-source N]
              [--curve-steps-unproven N] [--lookups-per-source N] [--lookups-unproven N]
              [--address-guesses BURST] [--address-guess-rate PER_SECOND]
              [--user-guesses BURST] [--user-guess-rate PER_SECOND]
              [--idle-timeout SECONDS] [--legacy-idle-timeout SECONDS] [--max-session-lifetime SECONDS]
              [--flush-timeout SECONDS] [--write-stall-timeout SECONDS] [--message-timeout SECONDS]
              [--max-unfinished-bytes BYTES]
              [--trusted-proxies ADDR|CIDR,...]
              [--max-connections N] [--workers N|auto]
Serves the --protocols listed (default every version: legacy,v2,v3) on the same port; --legacy off
(an alias) drops the Dart reference protocol from them. --max-message-size-v2 bounds v2 and v3.
Listens on 127.0.0.1:8080 by default. Without --users, serves the reference demo user (alice), on a
loopback --host without --trusted-proxies only: elsewhere, or behind a proxy, it refuses to start
(exit 2) unless --demo is given.
A v2 session ends after --idle-timeout (default 300; 0 never) without a frame from its client (our
client pings); a reference session after --legacy-idle-timeout (default 0: never, Dart clients cannot
ping); any session after --max-session-lifetime (default 0: never). A close waits at most
--flush-timeout (default 5) for a peer to take the last bytes. A session with replies waiting whose
client has fallen --write-stall-timeout (default 60; 0 never) behind reading 1 KiB/s of them (all that
waits, when less) is closed at once; one silence shorter than that is tolerated.
A message sent in several frames must arrive whole within --message-timeout of its first (default:
--max-message-size-v2 at 64 KiB/s, at least 60; 0 never). Such messages in progress may hold
--max-unfinished-bytes over every session (default a quarter of memory, a container's limit if
lower, at most 1 GiB); beyond it the sessions whose messages grew slowest are ended.
SIGHUP reloads --users FILE; the sessions of users it removes or re-keys end. SIGTERM and SIGINT stop accepting, let
sessions finish the replies due (v2 ends each with a close chunk) and exit within --shutdown-grace.
--metrics serves Prometheus text at http://HOST:PORT/metrics (off unless given).
At --max-handshaking (512) a newcomer is admitted if a handshake is stalled, silent --handshake-silent-ms
(25) after its accept or --handshake-stall-ms (500) without a step, time the server itself kept it
waiting not counted (the one stalled earliest is closed); else it is refused busy.
Each password judged takes a guess from its address (20, refilled at 1/s; then it fails like a
wrong password) and from its username (20, 1/s; then it waits, up to half the handshake timeout).
A v3 curve step waits in the worker pool's queue (64 a thread; full: busy), of which one source (an
address, an IPv6 /64) may hold --curve-steps-per-source (default an eighth of the queue; then busy too),
and every source with no session alive from it or ended within 24 hours, together, --curve-steps-unproven
(default half the queue): strangers from many addresses leave known devices the other half.
Key lookups from a source not so proven are capped the same way, under way at once: per source
--lookups-per-source (default an eighth of the store's bound), together --lookups-unproven (half).
Devices behind one NAT, or a proxy not in --trusted-proxies, share that: raise it for them.
--users FILE.json (SIGHUP reloads it), users.db or sqlite:PATH (SQLite), or postgres://USER@HOST/DB
(PostgreSQL; its password from PGPASSWORD, not the URL, which ps shows): database changes reach every
server within a second.
--trusted-proxies: load balancers whose connections begin with a PROXY protocol header (v1 or v2),
required from them and refused from anyone else; the client address in it is the one budgets, logs
and metrics see.
--max-connections: open connections at most (default: what the open-file limit leaves room for);
beyond it a connection gets the busy signal.
--workers N|auto (default 1; auto: one per core): N server processes share the port (SO_REUSEPORT)
under a supervisor that restarts a worker that dies, passes SIGHUP and SIGTERM on, and serves one
--metrics with every worker's series labelled worker="i". Each worker has its own caps, guessing
budgets and key cache.`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: String(legacy.DEMO_PORT) },
      host: { type: "string", default: "127.0.0.1" },
      "device-salt": { type: "string", default: toHex(legacy.DEMO_DEVICE_SALT) },
      users: { type: "string" },
      demo: { type: "boolean", default: false },
      crypto: { type: "string", default: "native" },
      legacy: { type: "string" },
      protocols: { type: "string", default: PROTOCOL_NAMES.join(",") },
      "max-message-size": { type: "string", default: String(legacy.DEFAULT_MAX_MESSAGE_SIZE) },
      "max-message-size-v2": { type: "string", default: String(v2.DEFAULT_MAX_MESSAGE_SIZE) },
      "handshake-timeout": { type: "string", default: "10" },
      "record-timeout": { type: "string", default: "10" },
      "log-level": { type: "string", default: "info" },
      "log-format": { type: "string", default: "pretty" },
      metrics: { type: "string" },
      "summary-interval": { type: "string", default: "60" },
      "shutdown-grace": { type: "string", default: "5" },
      "max-handshaking": { type: "string", default: "512" },
      "handshake-stall-ms": { type: "string", default: String(DEFAULT_ADMISSION.stallMs) },
      "handshake-silent-ms": { type: "string", default: String(DEFAULT_ADMISSION.silentMs) },
      "curve-steps-per-source": { type: "string" },
      "curve-steps-unproven": { type: "string" },
      "lookups-per-source": { type: "string" },
      "lookups-unproven": { type: "string" },
      "address-guesses": { type: "string", default: "20" },
      "address-guess-rate": { type: "string", default: "1" },
      "user-guesses": { type: "string", default: "20" },
      "user-guess-rate": { type: "string", default: "1" },
      "idle-timeout": { type: "string", default: "300" },
      "legacy-idle-timeout": { type: "string", default: "0" },
      "max-session-lifetime": { type: "string", default: "0" },
      "flush-timeout": { type: "string", default: "5" },
      "write-stall-timeout": { type: "string", default: "60" },
      "message-timeout": { type: "string" },
      "max-unfinished-bytes": { type: "string" },
      "trusted-proxies": { type: "string" },
      "max-connections": { type: "string" },
      workers: { type: "string", default: "1" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  // Before anything starts (workers included: they run this CLI with the same arguments).
  const trustedProxies = values["trusted-proxies"]?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const refusal = demoUserRefusal(values.host!, { usersStore: values.users !== undefined, demo: values.demo!, trustedProxies: (trustedProxies?.length ?? 0) > 0 });
  if (refusal) {
    console.error(`server: ${refusal}`);
    process.exit(2);
  }
  const log = createLogger({ level: values["log-level"] as LogLevel, format: values["log-format"] as LogFormat });
  // Said once, by the supervisor or the single process, not by each worker too (workers inherit
  // PGPASSWORD with the environment, and open the same store).
  if (values.users !== undefined && process.env.NSTP_WORKER === undefined) {
    const urlWarning = urlPasswordWarning(values.users);
    if (urlWarning) log.warn(urlWarning);
    warnIfOpenToOthers(storeFiles(values.users), log);
  }
  const crypto = getBackend(values.crypto!);
  const deviceSalt = fromHex(values["device-salt"]!);
  const port = parseIntArg("--port", values.port!, 0, 65535);
  const workers = values.workers === "auto" ? availableParallelism() : parseIntArg("--workers", values.workers!, 1, 256);
  if (workers > 1) {
    // The supervisor: the workers are this CLI again, each a whole server (supervisor.ts).
    await runSupervisor({
      workers,
      host: values.host!,
      port,
      argv: process.argv.slice(2),
      script: fileURLToPath(import.meta.url),
      metrics: values.metrics,
      graceMs: parseIntArg("--shutdown-grace", values["shutdown-grace"]!, 0, 3600) * 1000,
      log,
    });
    return;
  }
  const maxHandshaking = parseIntArg("--max-handshaking", values["max-handshaking"]!, 1, 1 << 20);
  const maxConnections = values["max-connections"] === undefined
    ? defaultMaxConnections(maxHandshaking)
    : parseIntArg("--max-connections", values["max-connections"], 1, 1 << 22);
  if (values.legacy !== undefined && values.legacy !== "on" && values.legacy !== "off") throw new Error("--legacy must be on or off");
  // --legacy on|off is kept as an alias: it adds the reference protocol to --protocols, or drops it.
  const named = new Set(parseProtocolList(values.protocols!).map((p) => p.name));
  if (values.legacy === "on") named.add("legacy");
  if (values.legacy === "off") named.delete("legacy");
  const protocols = parseProtocolList([...named].join(",")).map((p) => p.name);
  let keys: KeyStore;
  let store: CredentialStore | undefined;
  if (values.users && storeKind(values.users).kind !== "json") {
    // A database: changes are seen within a second by every process, without SIGHUP.
    store = await openCredentialStore(values.users, { deviceSalt, log, warnOpenToOthers: false });
    keys = store;
    log.info("credential store opened", { store: describeStore(values.users) });
  } else if (values.users) {
    const file = values.users;
    const store = loadUsersFile(file, deviceSalt, crypto);
    log.info("users loaded", { file, users: store.size });
    keys = store;
    // Reload on SIGHUP: new handshakes see the new table; the store tells the server (onUserRemoved)
    // of every user removed or re-keyed, whose open sessions then end.
    process.on("SIGHUP", () => {
      try {
        const { keys, verifiers } = readUsersFile(readFileSync(file, "utf8"), deviceSalt, crypto);
        store.replace(keys, verifiers);
        log.info("users reloaded", { file, users: store.size });
      } catch (e) {
        log.error("users reload failed; keeping the previous table", { file, reason: (e as Error).message });
      }
    });
  } else {
    keys = await demoKeyStore(crypto, deviceSalt);
    log.warn("serving the reference demo user alice/userpassword: anyone who read the reference can log in; pass --users FILE");
  }
  const saltWarning = demoSaltWarning(deviceSalt, { usersStore: values.users !== undefined, v3: protocols.includes("v3") });
  if (saltWarning) log.warn(saltWarning);

  const userBudget = {
    burst: parseIntArg("--user-guesses", values["user-guesses"]!, 1, 1 << 20),
    refillPerSecond: parseRateArg("--user-guess-rate", values["user-guess-rate"]!),
  };
  // A database that several hosts share may keep the per-user budget for all of them (PostgreSQL), so
  // adding hosts does not multiply a guesser's tries at one user (the per-address budget stays per host).
  const sharedUserBudget = store?.openGuessBudget ? await store.openGuessBudget(userBudget) : undefined;
  // The noble backend's AES-GCM runs in a pool (crypto/placement.ts; native needs none: it is faster
  // inline), and so does v3's curve step when the event loop is busy, inline when it is idle
  // (packages/core/src/pool/curve.ts, by the measured rule there; with the pool's queue full, or the
  // source's share of it in flight, server curve-cap.ts, the handshake is refused busy, nothing runs
  // inline). --curve-steps-per-source sets that share (default: a fraction of the queue, curve-cap.ts).
  // Workers share the cores: threads = cores / workers.
  const siblings = Number(process.env.NSTP_WORKERS ?? "1") || 1;
  const pool = crypto.name === "noble" || protocols.includes("v3")
    ? new CryptoPool({ backend: crypto, threads: Math.max(1, Math.floor(availableParallelism() / siblings)) })
    : undefined;
  const server = await startServer({
    keys,
    host: values.host!,
    port,
    crypto,
    logger: log,
    protocols,
    deviceSalt,
    maxHandshaking,
    admission: {
      stallMs: parseIntArg("--handshake-stall-ms", values["handshake-stall-ms"]!, 1, 3_600_000),
      silentMs: parseIntArg("--handshake-silent-ms", values["handshake-silent-ms"]!, 0, 3_600_000),
    },
    maxConnections,
    pool,
    maxCurveStepsPerSource: values["curve-steps-per-source"] !== undefined ? parseIntArg("--curve-steps-per-source", values["curve-steps-per-source"], 1, 1 << 20) : undefined,
    maxCurveStepsUnproven: values["curve-steps-unproven"] !== undefined ? parseIntArg("--curve-steps-unproven", values["curve-steps-unproven"], 1, 1 << 20) : undefined,
    maxUncachedLookupsPerSource: values["lookups-per-source"] !== undefined ? parseIntArg("--lookups-per-source", values["lookups-per-source"], 1, 1 << 20) : undefined,
    maxUncachedLookupsUnproven: values["lookups-unproven"] !== undefined ? parseIntArg("--lookups-unproven", values["lookups-unproven"], 1, 1 << 20) : undefined,
    // Workers share the port (supervisor.ts); a single process may too, harmlessly.
    reusePort: process.env.NSTP_WORKER !== undefined,
    failureLimit: {
      burst: parseIntArg("--address-guesses", values["address-guesses"]!, 1, 1 << 20),
      refillPerSecond: parseRateArg("--address-guess-rate", values["address-guess-rate"]!),
    },
    userBudget,
    sharedUserBudget,
    trustedProxies,
    ...(values["max-unfinished-bytes"] !== undefined ? { maxUnfinishedBytes: parseIntArg("--max-unfinished-bytes", values["max-unfinished-bytes"], 1, Number.MAX_SAFE_INTEGER) } : {}),
    limits: {
      // The reference's records carry no length: its maximum also bounds trial decryption work.
      maxMessageSize: parseIntArg("--max-message-size", values["max-message-size"]!, 0, 16 << 20),
      maxMessageSizeV2: parseIntArg("--max-message-size-v2", values["max-message-size-v2"]!, 0, 1 << 30),
      handshakeTimeoutMs: parseIntArg("--handshake-timeout", values["handshake-timeout"]!, 1, 3600) * 1000,
      // A partly received record or frame must complete within this (a slow drip cannot hold memory).
      recordTimeoutMs: parseIntArg("--record-timeout", values["record-timeout"]!, 1, 3600) * 1000,
      // At most 2^31 - 1 ms: the longest timer either runtime keeps (a longer one fires at once).
      idleTimeoutMs: parseIntArg("--idle-timeout", values["idle-timeout"]!, 0, MAX_TIMER_SECONDS) * 1000,
      legacyIdleTimeoutMs: parseIntArg("--legacy-idle-timeout", values["legacy-idle-timeout"]!, 0, MAX_TIMER_SECONDS) * 1000,
      maxSessionLifetimeMs: parseIntArg("--max-session-lifetime", values["max-session-lifetime"]!, 0, MAX_TIMER_SECONDS) * 1000,
      flushTimeoutMs: parseIntArg("--flush-timeout", values["flush-timeout"]!, 1, 3600) * 1000,
      writeStallTimeoutMs: parseIntArg("--write-stall-timeout", values["write-stall-timeout"]!, 0, MAX_TIMER_SECONDS) * 1000,
      // Absent: derived from the v2 message maximum (defaultMessageTimeoutMs).
      ...(values["message-timeout"] !== undefined ? { messageTimeoutMs: parseIntArg("--message-timeout", values["message-timeout"], 0, MAX_TIMER_SECONDS) * 1000 } : {}),
    },
  });
  log.info("listening", {
    address: `${server.host}:${server.port}`,
    protocols: protocols.join(","),
    runtime: runtimeVersion(),
    transport: server.transport,
    crypto: crypto.name,
    maxConnections: server.maxConnections,
    ...(process.env.NSTP_WORKER !== undefined ? { worker: process.env.NSTP_WORKER, pid: process.pid } : {}),
    ...(values["trusted-proxies"] ? { trustedProxies: values["trusted-proxies"] } : {}),
  });
  // Machine-readable line for scripts (the demo reads the port from it).
  console.log(`listening on ${server.host}:${server.port}`);

  const eventLoop = monitorEventLoopDelay({ resolution: 10 });
  eventLoop.enable();
  const metrics = values.metrics ? await startMetrics(values.metrics, { stats: server.stats, eventLoop, store, pool }) : undefined;
  if (metrics) {
    log.info("metrics", { address: `http://${metrics.host}:${metrics.port}/metrics` });
    console.log(`metrics on ${metrics.host}:${metrics.port}`);
  }
  const summaryEvery = parseIntArg("--summary-interval", values["summary-interval"]!, 0, 86_400);
  const summary = summaryEvery > 0
    ? setInterval(() => {
        log.info("summary", summaryFields({ stats: server.stats, eventLoop }));
        if (!metrics) eventLoop.reset();
      }, summaryEvery * 1000)
    : undefined;
  summary?.unref();
  const graceMs = parseIntArg("--shutdown-grace", values["shutdown-grace"]!, 0, 3600) * 1000;

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal, graceMs });
    clearInterval(summary);
    // A second deadline guards the exit itself: whatever happens, the process ends.
    setTimeout(() => process.exit(1), graceMs + 2000).unref();
    void Promise.all([server.close({ graceMs }), metrics?.close()]).then(async () => {
      await store?.close();
      await pool?.destroy();
      log.info("stopped", summaryFields({ stats: server.stats, eventLoop }));
      process.exit(0);
    });
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

function parseIntArg(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in ${min}..${max}`);
  return n;
}

function parseRateArg(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 1e6) throw new Error(`${name} must be a number of guesses per second in (0, 1e6]`);
  return n;
}

main().catch((e: unknown) => {
  console.error(`server: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
