/**
 * Spawning the project's processes (CLIs, the bench's server and load generator) with the project's
 * own Bun and Node 24 binaries, shared by the tests and the bench. Every wait is bounded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export type Runtime = "bun" | "node";
export const BIN: Record<Runtime, string> = { bun: join(ROOT, "node_modules", ".bin", "bun"), node: join(ROOT, "node_modules", ".bin", "node") };
/**
 * A CLI as each build runs it: Bun from the TypeScript sources, Node from the package's built dist
 * (`bun run build`), the artefact that users install from the registry.
 */
export function cliPath(runtime: Runtime, pkg: "server" | "client", name: string): string {
  return runtime === "node" ? join(ROOT, "packages", pkg, "dist", `${name}.js`) : join(ROOT, "packages", pkg, "src", `${name}.ts`);
}
const perRuntime = (pkg: "server" | "client", name: string): Record<Runtime, string> => ({ bun: cliPath("bun", pkg, name), node: cliPath("node", pkg, name) });
export const SERVER_CLI = perRuntime("server", "cli");
export const CLIENT_CLI = perRuntime("client", "cli");
export const USERS_CLI = perRuntime("server", "users-cli");

/**
 * Node's AES-GCM on 64 KiB buffers loses about two thirds of its speed to glibc returning each large
 * buffer to the kernel and faulting it back in; these keep such buffers in the heap (Bun is not
 * affected). The README recommends the same for production Node servers.
 */
export const NODE_MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: "4194304", MALLOC_TRIM_THRESHOLD_: "67108864" };

/** The environment a measured process of `runtime` runs with. */
export function runtimeEnv(runtime: Runtime): NodeJS.ProcessEnv {
  return runtime === "node" ? { ...process.env, ...NODE_MALLOC_ENV } : { ...process.env };
}

/** Resolves with the exit code, or null if the process is still running after `withinMs`. */
export function exited(child: ChildProcess, withinMs: number): Promise<number | null> {
  return new Promise((res) => {
    if (child.exitCode !== null) return res(child.exitCode);
    const t = setTimeout(() => res(null), withinMs);
    child.on("exit", (code) => (clearTimeout(t), res(code)));
  });
}

/** Ends a child by closing its stdin; kills it if it has not exited within `graceMs`. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null) return res();
    const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.on("exit", () => (clearTimeout(t), res()));
    child.stdin?.end();
  });
}

/** `runtime --version`. */
export function version(runtime: Runtime): Promise<string> {
  return new Promise((res) => {
    const c = spawn(BIN[runtime], ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    c.stdout.on("data", (d) => (out += d));
    c.on("close", () => res(out.trim()));
  });
}

/** The server's Prometheus metrics as a map from series (name and labels) to value. */
export async function scrapeMetrics(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new Map<string, number>();
  for (const l of text.split("\n")) {
    const [k, v] = l.split(" ");
    if (k && v && !k.startsWith("#")) m.set(k, Number(v));
  }
  return m;
}

// The server's CLIs as real processes (tests and bench): started, scraped, driven, every wait bounded.
/** Spawns `cmd` and resolves once its stdout matches `pattern`; kills it if that takes too long. */
export function spawnUntil(cmd: string, args: string[], pattern: RegExp, timeoutMs = 20_000): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => (child.kill("SIGKILL"), rej(new Error(`no ${pattern} in: ${out}`))), timeoutMs);
    child.stdout!.on("data", (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        res({ child, match: m });
      }
    });
    child.on("exit", (code) => (clearTimeout(timer), rej(new Error(`exited with ${code}: ${out}`))));
  });
}

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  /** Set when `--metrics` was among the arguments. */
  metricsPort?: number;
}

/** Starts the server CLI on `runtime` with `args`; resolves once it listens (and serves metrics, if asked). */
export async function startServerProcess(runtime: Runtime, args: string[]): Promise<ServerProcess> {
  const withMetrics = args.includes("--metrics");
  const pattern = withMetrics ? /listening on [^:]+:(\d+)\n[\s\S]*metrics on [^:]+:(\d+)/ : /listening on [^:]+:(\d+)/;
  const { child, match } = await spawnUntil(BIN[runtime], [SERVER_CLI[runtime], ...args], pattern);
  return { child, port: Number(match[1]), metricsPort: withMetrics ? Number(match[2]) : undefined };
}

/** Keeps what a child writes to stderr (its log), bounded to the last `maxChars`. */
export function collectStderr(child: ChildProcess, maxChars = 4 << 20): { text(): string } {
  let text = "";
  child.stderr?.on("data", (d) => {
    text += d;
    if (text.length > maxChars) text = text.slice(-maxChars);
  });
  return { text: () => text };
}

/** Runs `bun run users` (or its Node build) to completion, the password on stdin; rejects on failure. */
export function runUsersCli(runtime: Runtime, args: string[], stdin = "", timeoutMs = 60_000): Promise<string> {
  return new Promise((res, rej) => {
    const child = spawn(BIN[runtime], [USERS_CLI[runtime], ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "", err = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) res(out);
      else rej(new Error(`users ${args.join(" ")} exited with ${code}: ${err}`));
    });
    child.stdin!.end(stdin);
  });
}
