export { startServer, referenceHandler, DEFAULT_HOST, DEFAULT_LIMITS, type ServerOptions, type RunningServer } from "./server.ts";
export type { MessageHandler, SessionInfo, ConnectionLimits } from "./connection.ts";
export * from "./credentials.ts";
export { ServerStats } from "./stats.ts";
export { LeakyBuckets, type LeakyBucketsOptions } from "./limiter.ts";
export { HandshakeAdmission, type AdmissionOptions, type Contender } from "./admission.ts";
export { GuessBudget, type GuessBudgetOptions, type Ticket, type Verdict } from "./budget.ts";
export { startMetrics, renderPrometheus, summaryFields, parseAddress, type MetricsEndpoint, type MetricsSources } from "./metrics.ts";
