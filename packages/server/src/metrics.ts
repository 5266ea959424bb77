/**
 * Observability: the server's counters as Prometheus text (exposition format 0.0.4) on an opt-in
 * address, and a one-line summary for the log. Nothing here carries a username, key or payload.
 */
import { createServer, type Server } from "node:http";
import { type ELDHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import type { CryptoPool } from "@nstp/core/pool";
import type { ServerStats } from "./stats.ts";
import { defenceSeries } from "./defence-metrics.ts";
import type { StoreHealth } from "./stores/records.ts";

export interface MetricsSources {
  stats: ServerStats;
  pool?: CryptoPool;
  /** Event-loop delay histogram (enabled); one is created when absent. */
  eventLoop?: ELDHistogram;
  /** A database credential store, whose health is exported. */
  store?: { health(): StoreHealth };
}

function line(name: string, value: number, labels?: Record<string, string>): string {
  const l = labels && Object.keys(labels).length
    ? `{${Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`).join(",")}}`
    : "";
  return `${name}${l} ${Number.isFinite(value) ? value : 0}`;
}

function metric(out: string[], name: string, type: "gauge" | "counter", help: string, samples: [number, Record<string, string>?][]): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [v, l] of samples) out.push(line(name, v, l));
}

export function renderPrometheus(src: Required<Pick<MetricsSources, "stats" | "eventLoop">> & Pick<MetricsSources, "pool" | "store">): string {
  const s = src.stats;
  const out: string[] = [];
  metric(out, "nstp_connections", "gauge", "Open connections.", [[s.connections]]);
  metric(out, "nstp_handshaking", "gauge", "Connections still in the handshake.", [[s.handshaking]]);
  metric(out, "nstp_connections_total", "counter", "Connections accepted.", [[s.connectionsTotal]]);
  metric(out, "nstp_connections_refused_total", "counter", "Connections refused at accept (an address out of guesses, a full derivation queue).", [[s.refused]]);
  metric(out, "nstp_handshakes_total", "counter", "Handshakes completed, by protocol.", Object.entries(s.handshakesByProtocol).map(([protocol, n]) => [n, { protocol }]));
  metric(out, "nstp_handshakes_failed_total", "counter", "Handshakes failed, by error code.", Object.entries(s.handshakesFailed).map(([reason, n]) => [n, { reason }]));
  metric(out, "nstp_sessions_failed_total", "counter", "Established sessions ended by an error, by code.", Object.entries(s.sessionsFailed).map(([reason, n]) => [n, { reason }]));
  metric(out, "nstp_sessions_ended_total", "counter", "Sessions the server ended without an error, by reason.", Object.entries(s.sessionsEnded).map(([reason, n]) => [n, { reason }]));
  metric(out, "nstp_sockets", "gauge", "Sockets open, including refused ones and ones still flushing their last bytes.", [[s.sockets]]);
  metric(out, "nstp_messages_total", "counter", "Application messages, by direction.", [[s.messagesIn, { direction: "in" }], [s.messagesOut, { direction: "out" }]]);
  metric(out, "nstp_payload_bytes_total", "counter", "Application payload bytes, by direction.", [[s.payloadIn, { direction: "in" }], [s.payloadOut, { direction: "out" }]]);
  metric(out, "nstp_wire_bytes_total", "counter", "Bytes on the wire, by direction.", [[s.wireIn, { direction: "in" }], [s.wireOut, { direction: "out" }]]);
  if (s.defence) for (const d of defenceSeries(s.defence)) metric(out, d.name, d.type, d.help, d.samples);
  metric(out, "nstp_proxy_headers_total", "counter", "PROXY protocol headers accepted from trusted proxies, by version.", Object.entries(s.proxyHeaders).map(([version, n]) => [n, { version }]));
  metric(out, "nstp_proxy_header_failures_total", "counter", "Connections closed for their PROXY header, by reason.", Object.entries(s.proxyHeaderFailures).map(([reason, n]) => [n, { reason }]));
  if (src.pool) {
    metric(out, "nstp_pool_queue_depth", "gauge", "Crypto tasks waiting for a worker thread.", [[src.pool.queued]]);
    metric(out, "nstp_pool_tasks_total", "counter", "Crypto tasks the pool finished.", [[src.pool.completed]]);
  }
  if (src.store) {
    const health = src.store.health();
    metric(out, "nstp_store_up", "gauge", "1 if the credential database answered at the last attempt.", [[health.ok ? 1 : 0]]);
    metric(out, "nstp_store_cached_records", "gauge", "Credential records served from memory.", [[health.cached]]);
    metric(out, "nstp_store_last_ok_seconds", "gauge", "Unix time of the last successful contact with the credential database.", [[(health.lastOkAt ?? 0) / 1000]]);
  }
  const h = src.eventLoop;
  metric(out, "nstp_event_loop_delay_seconds", "gauge", "Event-loop delay since the last scrape.", [
    [h.percentile(50) / 1e9, { quantile: "0.5" }],
    [h.percentile(99) / 1e9, { quantile: "0.99" }],
    [h.max / 1e9, { quantile: "1" }],
  ]);
  metric(out, "nstp_resident_memory_bytes", "gauge", "Resident set size.", [[process.memoryUsage().rss]]);
  return out.join("\n") + "\n";
}

/** One line for the periodic log summary. */
export function summaryFields(src: Required<Pick<MetricsSources, "stats" | "eventLoop">> & Pick<MetricsSources, "pool">): Record<string, number> {
  const s = src.stats;
  const failed = Object.values(s.handshakesFailed).reduce((a, b) => a + b, 0);
  return {
    connections: s.connections,
    handshaking: s.handshaking,
    handshakesOk: s.handshakesOk,
    handshakesFailed: failed,
    refused: s.refused,
    messagesIn: s.messagesIn,
    messagesOut: s.messagesOut,
    poolQueue: src.pool?.queued ?? 0,
    eventLoopP99Ms: Math.round(src.eventLoop.percentile(99) / 1e4) / 100,
    rssMB: Math.round(process.memoryUsage().rss / 1e6),
  };
}

export interface MetricsEndpoint {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Parses "HOST:PORT" (IPv6 in brackets). */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`address must be HOST:PORT, got ${address}`);
  return { host: m[1] ?? m[2]!, port };
}

/** Serves GET /metrics as Prometheus text; anything else is 404. Each scrape resets the delay histogram. */
export async function startMetrics(address: string, sources: MetricsSources): Promise<MetricsEndpoint> {
  const { host, port } = parseAddress(address);
  const eventLoop = sources.eventLoop ?? monitorEventLoopDelay({ resolution: 10 });
  if (!sources.eventLoop) eventLoop.enable();
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    const body = renderPrometheus({ stats: sources.stats, pool: sources.pool, eventLoop, store: sources.store });
    eventLoop.reset();
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(body);
  });
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as { port: number };
  return {
    host,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        if (!sources.eventLoop) eventLoop.disable();
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}
