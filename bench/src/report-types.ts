/** The bench report's JSON shape (bench/results/*.json). */
import { PROTOCOL_NAMES, type RegisteredProtocol } from "@nstp/core";

/** The baselines the secure versions are measured against: raw TCP and TLS 1.3. */
export const BASELINES = ["tcp", "tls"] as const;
export type Baseline = (typeof BASELINES)[number];

/** A row's protocol: a registered version (core's registry.ts) or a baseline. */
export type Protocol = RegisteredProtocol | Baseline;

/** Every registered version, newest first: the bench measures each one the registry lists. */
export const VERSIONS: readonly RegisteredProtocol[] = [...PROTOCOL_NAMES].reverse();

/** What the echo, latency and chart rows cover: every version, then the baselines. */
export const REPORTED: readonly Protocol[] = [...VERSIONS, ...BASELINES];

export interface ResultRow {
  scenario: string;
  runtime: "bun" | "node";
  protocol: Protocol;
  /** Message size in bytes, where it applies. */
  size?: number;
  metric: string;
  /** The median of `samples` unless the metric says otherwise (a percentile of them). */
  value: number;
  unit: string;
  samples: number[];
}

export interface Report {
  env: {
    runtimes: Record<string, string>;
    cpu: string;
    cores: number;
    commit: string;
    date: string;
    options: Record<string, unknown>;
    tlsCipher: Record<string, string>;
    hyperfine: string;
    /** What the stores group could not run here (a package missing). */
    stores?: string;
    durationSeconds: number;
  };
  results: ResultRow[];
}
