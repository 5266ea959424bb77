/** Spawning the bench's server and load-generator processes, each bounded in time. */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { BIN, type Runtime, runtimeEnv as env, stopChild } from "@nstp/testkit";

export { BIN, NODE_MALLOC_ENV, ROOT, type Runtime, version } from "@nstp/testkit";
const SRC = dirname(fileURLToPath(import.meta.url));

export interface ServerProc {
  port: number;
  command(line: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export function startServer(runtime: Runtime, args: string[]): Promise<ServerProc> {
  const child = spawn(BIN[runtime], [join(SRC, "server.ts"), ...args], { stdio: ["pipe", "pipe", "pipe"], env: env(runtime) });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on("line", (l) => waiting.shift()?.(l));
  const nextLine = (timeoutMs: number) =>
    new Promise<string>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`bench server (${runtime}) did not answer: ${stderr.slice(-500)}`)), timeoutMs);
      waiting.push((l) => (clearTimeout(t), res(l)));
    });
  return nextLine(30_000).then((first) => {
    const m = /listening on [^:]+:(\d+)/.exec(first);
    if (!m) throw new Error(`bench server said ${first}`);
    return {
      port: Number(m[1]),
      async command(line) {
        const p = nextLine(10_000);
        child.stdin!.write(line + "\n");
        return JSON.parse(await p) as Record<string, number>;
      },
      stop: () => stopChild(child),
    };
  });
}

/** Runs one load-generator scenario; resolves with its JSON result. */
export function runLoad(runtime: Runtime, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  return runScript(runtime, "load.ts", args, timeoutMs);
}

/** Runs a bench script that prints one JSON line last; resolves with it. */
export function runScript(runtime: Runtime, script: string, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    const child = spawn(BIN[runtime], [join(SRC, script), ...args], { stdio: ["ignore", "pipe", "pipe"], env: env(runtime) });
    let out = "", err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(t);
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code !== 0) return rej(new Error(`${script} ${args.join(" ")} (${runtime}) exited ${code}: ${err.slice(-800)}`));
      try {
        res(JSON.parse(last) as Record<string, unknown>);
      } catch {
        rej(new Error(`${script} ${args.join(" ")} printed ${last.slice(0, 200)}`));
      }
    });
  });
}
