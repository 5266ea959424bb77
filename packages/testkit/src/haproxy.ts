/**
 * Test and bench support: a real HAProxy (Debian's package; .ci/run installs it) in TCP mode on a
 * loopback port, balancing round-robin over backends with `send-proxy-v2`. Every wait is bounded.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The haproxy binary, or undefined when it is not installed. */
export function haproxyBinary(): string | undefined {
  for (const bin of ["haproxy", "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]) {
    const r = spawnSync(bin, ["-v"], { encoding: "utf8", timeout: 5000 });
    if (r.status === 0 && /HAProxy version/.test(r.stdout)) return bin;
  }
  return undefined;
}

/** A port that was free a moment ago (HAProxy needs a number in its configuration). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The source address of the readiness probe. */
export const PROBE_ADDRESS = "127.0.0.254";

export interface RunningHaproxy {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

export function haproxyConfig(port: number, backends: number[], proxyHeader: "send-proxy" | "send-proxy-v2" = "send-proxy-v2"): string {
  return [
    "global",
    "  maxconn 4096",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "frontend nstp",
    `  bind 127.0.0.1:${port}`,
    "  default_backend servers",
    "backend servers",
    "  balance roundrobin",
    ...backends.map((p, i) => `  server s${i} 127.0.0.1:${p} ${proxyHeader}`),
    "",
  ].join("\n");
}

/**
 * Starts HAProxy in the foreground in front of `backends`; resolves once its port accepts connections.
 * The port is found free and bound by HAProxy a moment later: another process may take it in between,
 * so a HAProxy that exits at start (its bind failed) is tried again on a fresh port, twice at most.
 */
export async function startHaproxy(bin: string, backends: number[], proxyHeader?: "send-proxy" | "send-proxy-v2"): Promise<RunningHaproxy> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startHaproxyOnce(bin, backends, proxyHeader);
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
}

async function startHaproxyOnce(bin: string, backends: number[], proxyHeader?: "send-proxy" | "send-proxy-v2"): Promise<RunningHaproxy> {
  const dir = mkdtempSync(join(tmpdir(), "nstp-haproxy-"));
  const cfg = join(dir, "haproxy.cfg");
  const port = await freePort();
  writeFileSync(cfg, haproxyConfig(port, backends, proxyHeader));
  const child = spawn(bin, ["-db", "-f", cfg], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err = (err + d).slice(-4000)));
  const stop = () =>
    new Promise<void>((resolve) => {
      rmSync(dir, { recursive: true, force: true });
      if (child.exitCode !== null) return resolve();
      const t = setTimeout(() => (child.kill("SIGKILL"), resolve()), 3000);
      child.once("exit", () => (clearTimeout(t), resolve()));
      child.kill("SIGTERM");
    });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    const up = await new Promise<boolean>((resolve) => {
      // From an address of its own, so that what HAProxy relays for the probe is told apart in logs.
      const s = net.connect({ port, host: "127.0.0.1", localAddress: PROBE_ADDRESS }, () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (up) return { port, child, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`haproxy did not start: ${err}`);
}
