import { detectRuntime } from "../runtime.ts";
import { nodeTransport } from "./node.ts";
import type { Transport } from "./wire.ts";

export * from "./wire.ts";
export { nodeTransport } from "./node.ts";

/** The transport of the runtime we are on: Bun's own sockets under Bun, node:net under Node. */
export async function defaultTransport(): Promise<Transport> {
  if (detectRuntime() === "bun") return (await import("./bun.ts")).bunTransport;
  return nodeTransport;
}

export async function transportByName(name: "bun" | "node"): Promise<Transport> {
  if (name === "bun") {
    if (detectRuntime() !== "bun") throw new RangeError("the bun transport needs the Bun runtime");
    return (await import("./bun.ts")).bunTransport;
  }
  return nodeTransport;
}
