export { startServer, referenceHandler, DEFAULT_HOST, DEFAULT_LIMITS, type ServerOptions, type RunningServer } from "./server.ts";
export type { MessageHandler, SessionInfo, ConnectionLimits } from "./connection.ts";
export * from "./credentials.ts";
export { ServerStats } from "./stats.ts";
export { FailureLimiter, type FailureLimiterOptions } from "./limiter.ts";
export { startMetrics, renderPrometheus, summaryFields, parseAddress, type MetricsEndpoint, type MetricsSources } from "./metrics.ts";
export { TrustedProxies } from "./trusted-proxies.ts";
