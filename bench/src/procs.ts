/** Spawning the bench's server and load-generator processes, each bounded in time. */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { BIN, type Runtime, runtimeEnv as env, stopChild } from "@nstp/testkit";

export { BIN, NODE_MALLOC_ENV, ROOT, type Runtime, version } from "@nstp/testkit";
/**
 * The bench's own scripts run from source on both runtimes; what they measure comes through the
 * packages' exports, which resolve to src under Bun (the "bun" condition) and to the built dist under
 * Node (the "import" condition): the Node columns are the Node build users install (`bun run build`).
 */
const SRC = dirname(fileURLToPath(import.meta.url));

/** Where CPU profiles go (`bench --profile`); undefined: no profiling. */
let profileDir: string | undefined;

/** From now on, processes started with a profile name write a CPU profile there when they exit. */
export function profileInto(dir: string): void {
  profileDir = dir;
}

export function profiling(): boolean {
  return profileDir !== undefined;
}

/** Bun and Node take the same flags: a .cpuprofile (Chrome DevTools format) written at exit. */
function profileFlags(name: string | undefined): string[] {
  return profileDir && name ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
}

export interface ServerProc {
  port: number;
  command(line: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** A bench process that prints a first line, then answers commands on stdin with one JSON line each. */
export interface CommandProc {
  first: string;
  command(line: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * `ownSession`: the process starts a session of its own (setsid). Linux's scheduler autogroups
 * (sched_autogroup_enabled, on here) share the CPU fairly between sessions first and only then between
 * the processes of one session, and nice works only inside a session. Left in the runner's session, a
 * server under test shares one session's share with its own load processes (four busy device
 * processes in the storm), and other engineers' niced runs, each in a session of its own, weigh as
 * much as all of ours together: the storm's server waited for a CPU for half the storm, 2.7 s at a
 * time (bench/results/loop5-storm.md). In a session of its own it competes like a process on its
 * own host would, with its load generator kept apart. It still exits when the runner does: the
 * bench server ends when its stdin closes.
 */
export async function startCommandProc(runtime: Runtime, script: string, args: string[], firstTimeoutMs = 30_000, profileName?: string, opts: { ownSession?: boolean } = {}): Promise<CommandProc> {
  // --expose-gc: the fleet bench's "gc" command collects before reading resident memory (Bun has Bun.gc).
  const flags = [...(runtime === "node" ? ["--expose-gc"] : []), ...profileFlags(profileName)];
  const child = spawn(BIN[runtime], [...flags, join(SRC, script), ...args], { stdio: ["pipe", "pipe", "pipe"], env: env(runtime), detached: opts.ownSession === true });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const lines = createInterface({ input: child.stdout! });
  const waiting: { line(l: string): void; exit(code: number | null): void }[] = [];
  lines.on("line", (l) => waiting.shift()?.line(l));
  child.on("exit", (code) => {
    for (const w of waiting.splice(0)) w.exit(code);
  });
  const nextLine = (timeoutMs: number) =>
    new Promise<string>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`bench ${script} (${runtime}) did not answer: ${stderr.slice(-500)}`)), timeoutMs);
      waiting.push({
        line: (l) => (clearTimeout(t), res(l)),
        exit: (code) => (clearTimeout(t), rej(new Error(`bench ${script} (${runtime}) exited ${code}: ${stderr.slice(-500)}`))),
      });
    });
  const first = await nextLine(firstTimeoutMs);
  return {
    first,
    async command(line, timeoutMs = 10_000) {
      const p = nextLine(timeoutMs);
      child.stdin!.write(line + "\n");
      return JSON.parse(await p) as Record<string, unknown>;
    },
    stop: () => stopChild(child),
  };
}

/** `profileName`: with `bench --profile`, the server's CPU profile, written when it stops. */
export async function startServer(runtime: Runtime, args: string[], profileName?: string, opts: { ownSession?: boolean } = {}): Promise<ServerProc> {
  const p = await startCommandProc(runtime, "server.ts", args, 30_000, profileName, opts);
  const m = /listening on [^:]+:(\d+)/.exec(p.first);
  if (!m) throw new Error(`bench server said ${p.first}`);
  return { port: Number(m[1]), command: (line) => p.command(line) as Promise<Record<string, number>>, stop: p.stop };
}

/** Runs one load-generator scenario; resolves with its JSON result. */
export function runLoad(runtime: Runtime, args: string[], timeoutMs: number, profileName?: string): Promise<Record<string, unknown>> {
  return runScript(runtime, "load.ts", args, timeoutMs, profileName);
}

/** Runs a bench script that prints one JSON line last; resolves with it. */
export function runScript(runtime: Runtime, script: string, args: string[], timeoutMs: number, profileName?: string): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    const child = spawn(BIN[runtime], [...profileFlags(profileName), join(SRC, script), ...args], { stdio: ["ignore", "pipe", "pipe"], env: env(runtime) });
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
