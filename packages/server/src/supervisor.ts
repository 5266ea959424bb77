/**
 * --workers N: N server processes on one port (SO_REUSEPORT: the kernel spreads new connections
 * over them), run by this supervisor. It starts each worker as the same CLI with `--workers 1`, the
 * port and a metrics port of its own; restarts a worker that dies (after 1 s, doubling up to 30 s
 * while it keeps dying within a minute of its start); forwards SIGHUP (reload) and SIGTERM/SIGINT
 * (graceful drain in every worker, then exit); and serves one /metrics holding every worker's series
 * labelled worker="i". Each worker is a whole server: its own key cache, guessing budgets,
 * admission and caps (README "Every core" says what that means for budgets).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import * as net from "node:net";
import { createInterface } from "node:readline";
import type { Logger } from "@nstp/core";
import { parseAddress } from "./metrics.ts";
import { mergeWorkerMetrics } from "./metrics-merge.ts";

export interface SupervisorOptions {
  workers: number;
  host: string;
  /** 0: the supervisor picks a free port for all workers. */
  port: number;
  /** The CLI's own arguments, passed on to every worker (later flags override them). */
  argv: readonly string[];
  /** The CLI script the workers run. */
  script: string;
  /** HOST:PORT for the merged /metrics, or undefined. */
  metrics?: string;
  graceMs: number;
  log: Logger;
}

interface Worker {
  index: number;
  child?: ChildProcess;
  metricsPort?: number;
  startedAt: number;
  restartDelayMs: number;
}

const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;
/** A worker that ran this long before dying is restarted after the minimum delay again. */
const STABLE_MS = 60_000;
/** A worker's /metrics has this long to answer a scrape. */
const SCRAPE_TIMEOUT_MS = 2000;

export async function runSupervisor(o: SupervisorOptions): Promise<void> {
  const port = o.port || (await freePort(o.host));
  const workers: Worker[] = Array.from({ length: o.workers }, (_, index) => ({ index, startedAt: 0, restartDelayMs: RESTART_MIN_MS }));
  let stopping = false;

  const start = (w: Worker): Promise<void> => {
    const args = [...process.execArgv, o.script, ...o.argv, "--workers", "1", "--port", String(port), "--summary-interval", "0"];
    if (o.metrics) args.push("--metrics", `127.0.0.1:0`);
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, NSTP_WORKER: String(w.index), NSTP_WORKERS: String(o.workers) },
    });
    w.child = child;
    w.startedAt = Date.now();
    w.metricsPort = undefined;
    const listening = new Promise<void>((resolve) => {
      createInterface({ input: child.stdout! }).on("line", (line) => {
        const metrics = /^metrics on [^:]+:(\d+)$/.exec(line);
        if (metrics) w.metricsPort = Number(metrics[1]);
        if (/^listening on /.test(line)) resolve();
      });
      child.once("exit", () => resolve());
    });
    child.once("exit", (code, signal) => {
      w.child = undefined;
      if (stopping) return;
      // A worker that ran a while is healthy again: its next crash restarts it soon.
      if (Date.now() - w.startedAt >= STABLE_MS) w.restartDelayMs = RESTART_MIN_MS;
      o.log.error("worker died; restarting", { worker: w.index, code: code ?? -1, signal: signal ?? "", delayMs: w.restartDelayMs });
      const delay = w.restartDelayMs;
      w.restartDelayMs = Math.min(RESTART_MAX_MS, w.restartDelayMs * 2);
      setTimeout(() => {
        if (!stopping) void start(w).then(() => w.child && o.log.info("worker restarted", { worker: w.index, pid: w.child.pid ?? 0 }));
      }, delay);
    });
    return listening;
  };

  // The signals are ours before any worker starts: a SIGTERM between the "listening" line and the
  // handlers (an await apart) ended the supervisor with the default action and left its workers
  // running, orphaned (seen by a CLI test that signals as soon as it reads the line).
  let metricsServer: Awaited<ReturnType<typeof serveMergedMetrics>> | undefined;
  process.on("SIGHUP", () => {
    for (const w of workers) w.child?.kill("SIGHUP");
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    o.log.info("shutting down workers", { signal, graceMs: o.graceMs });
    for (const w of workers) w.child?.kill("SIGTERM");
    // Each worker drains within its grace; one that does not is killed, and the supervisor exits.
    const kill = setTimeout(() => {
      for (const w of workers) w.child?.kill("SIGKILL");
    }, o.graceMs + 3000);
    kill.unref();
    void Promise.all(workers.map((w) => (w.child ? new Promise((r) => w.child!.once("exit", r)) : undefined))).then(() => {
      metricsServer?.server.close();
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  await Promise.all(workers.map(start));
  if (stopping) return; // stopped while the workers started: stop() exits once they have
  for (const w of workers) if (!w.child) throw new Error(`worker ${w.index} exited at start`);
  o.log.info("workers listening", { workers: o.workers, address: `${o.host}:${port}`, pids: workers.map((w) => w.child?.pid ?? 0).join(",") });
  // The machine-readable lines the single-process CLI prints, then one per worker.
  console.log(`listening on ${o.host}:${port}`);
  for (const w of workers) console.log(`worker ${w.index} pid ${w.child?.pid}`);

  metricsServer = o.metrics ? await serveMergedMetrics(o.metrics, workers) : undefined;
  if (metricsServer) console.log(`metrics on ${metricsServer.host}:${metricsServer.port}`);
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen({ host, port: 0 }, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function scrape(port: number | undefined): Promise<string | undefined> {
  if (port === undefined) return undefined;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

async function serveMergedMetrics(address: string, workers: readonly Worker[]) {
  const { host, port } = parseAddress(address);
  const server = createHttpServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    void Promise.all(workers.map((w) => scrape(w.metricsPort))).then((texts) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(mergeWorkerMetrics(texts));
    });
  });
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return { server, host, port: (server.address() as net.AddressInfo).port };
}
