/** The bench report's JSON shape (bench/results/*.json). */
export type Protocol = "legacy" | "v2" | "v3" | "tcp" | "tls";

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
