/**
 * Test support for spawning the server's CLIs as real processes (the shared base, binaries and
 * metrics, is @nstp/testkit's). Every wait is bounded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { BIN, type Runtime, SERVER_CLI, USERS_CLI } from "@nstp/testkit";

export { BIN, CLIENT_CLI, ROOT, type Runtime, SERVER_CLI, USERS_CLI, exited, scrapeMetrics } from "@nstp/testkit";

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
