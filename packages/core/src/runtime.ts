/** The one place that asks which runtime we are on. */
export type RuntimeName = "bun" | "node";

export function detectRuntime(): RuntimeName {
  return typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "node";
}

export function runtimeVersion(): string {
  const g = globalThis as { Bun?: { version: string } };
  return g.Bun ? `bun ${g.Bun.version}` : `node ${process.versions.node}`;
}
