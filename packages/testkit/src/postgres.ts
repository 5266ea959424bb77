/**
 * Test and bench support: a real PostgreSQL (Debian's package; .ci/run installs it) in a temporary
 * directory on a loopback port, trusting local connections. As root it runs as the `postgres` system
 * user (PostgreSQL refuses to run as root). It can be stopped and started again on the same port.
 */
import { spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { userInfo } from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./haproxy.ts";

/** The directory with initdb and pg_ctl, or undefined when PostgreSQL is not installed. */
export function postgresBinDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "pg_ctl"))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : undefined;
}

export interface RunningPostgres {
  /** postgres://nstp@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  stop(): void;
  start(): void;
  /** Stops it and removes its directory. */
  destroy(): void;
}

function asOwner(owner: { uid: number; gid: number } | undefined, bin: string, args: string[], timeoutMs: number): void {
  const [cmd, argv] = owner ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, args];
  const r = spawnSync(cmd, argv as string[], { encoding: "utf8", timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`${bin.split("/").pop()} ${args[0]} failed (${r.status ?? r.error?.message}): ${r.stderr}${r.stdout}`.slice(0, 2000));
}

export async function startPostgres(binDir: string): Promise<RunningPostgres> {
  const dir = mkdtempSync(join(tmpdir(), "nstp-pg-"));
  const data = join(dir, "data");
  let owner: { uid: number; gid: number } | undefined;
  if (userInfo().uid === 0) {
    const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
    owner = { uid: id("-u"), gid: id("-g") };
    chownSync(dir, owner.uid, owner.gid);
  }
  asOwner(owner, join(binDir, "initdb"), ["-D", data, "-U", "nstp", "-A", "trust", "-E", "UTF8", "--no-sync"], 120_000);
  const stop = () => asOwner(owner, join(binDir, "pg_ctl"), ["stop", "-D", data, "-m", "fast", "-w", "-t", "60"], 90_000);
  // The port is found free, then bound by the postmaster a moment later: another process may take it
  // in between (about 1 bind(0) in 14,000 picks the same port), so a failed start tries a fresh one.
  let port = 0;
  let start = () => {};
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
    start = () => asOwner(owner, join(binDir, "pg_ctl"), ["start", "-D", data, "-l", join(dir, "log"), "-o", opts, "-w", "-t", "60"], 90_000);
    try {
      start();
      break;
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
  let running = true;
  return {
    url: `postgres://nstp@127.0.0.1:${port}/postgres`,
    port,
    start: () => {
      start();
      running = true;
    },
    stop: () => {
      stop();
      running = false;
    },
    destroy: () => {
      try {
        if (running) stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
