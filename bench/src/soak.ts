/**
 * bun run soak -- --sessions 1000 --messages 100 [--protocol v3|v2|legacy] [--server bun|node] [--max-size BYTES]
 *                  [--workers N]
 *
 * Opens the sessions concurrently against a server process (the bench's echo server), each sending
 * messages of random size and content, and checks that every reply arrives once, in order, intact.
 * Prints throughput, failed handshakes, lost or corrupted replies, the server's peak RSS and its
 * event-loop delay; exits non-zero if a handshake failed or anything was lost or corrupted. With
 * --workers N, N server processes share the port (reusePort, as the server's --workers runs them)
 * and the kernel spreads the sessions over them.
 *
 * A handshake refused with the busy signal (ERR_BUSY: the server sheds load rather than stall its
 * event loop, pool/curve.ts) is the server working as designed, not a loss: the session retries it
 * with the client library's backoff (200 ms doubling, jittered), up to BUSY_ATTEMPTS attempts, and
 * the retries are counted and reported apart, as the fleet storm counts its busy retries.
 */
import { randomBytes, randomInt } from "node:crypto";
import { parseArgs } from "node:util";
import { availableParallelism } from "node:os";
import { type Runtime, startServer } from "./procs.ts";
import { open } from "./conns.ts";
import { protocolNamed } from "@nstp/core";
import { backoffDelay } from "@nstp/client";

const { values } = parseArgs({
  options: {
    sessions: { type: "string", default: "1000" },
    messages: { type: "string", default: "100" },
    protocol: { type: "string", default: "v2" },
    server: { type: "string", default: "bun" },
    "max-size": { type: "string", default: "16384" },
    window: { type: "string", default: "8" },
    "timeout-seconds": { type: "string", default: "300" },
    workers: { type: "string", default: "1" },
  },
  strict: true,
});

const sessions = Number(values.sessions);
const perSession = Number(values.messages);
const maxSize = Number(values["max-size"]);
// The version's own window caps the soak's (the reference's lockstep is 1).
const protocol = protocolNamed(values.protocol!).name;
const window = Math.min(protocolNamed(protocol).defaults.window, Number(values.window));

const workers = Number(values.workers);
if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new Error("--workers must be 1..64");
// Each worker's pool gets its share of the cores, as the server CLI's --workers sizes them.
const threads = String(Math.max(1, Math.floor(availableParallelism() / workers)));
const serverArgs = ["--kdf", "pool", "--threads", threads, ...(workers > 1 ? ["--reuse-port"] : [])];
const first = await startServer(values.server as Runtime, serverArgs);
const servers = [first, ...(await Promise.all(Array.from({ length: workers - 1 }, () => startServer(values.server as Runtime, [...serverArgs, "--port", String(first.port)]))))];
const server = { port: first.port };
const BUSY_ATTEMPTS = 10;
let busyRetries = 0;
let failedHandshakes = 0, lost = 0, corrupted = 0, received = 0, bytes = 0;
const errors = new Map<string, number>();
const note = (e: unknown) => {
  const k = (e as { code?: string }).code ?? (e as Error).message;
  errors.set(k, (errors.get(k) ?? 0) + 1);
};

async function openRetryingBusy() {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open(protocol, { port: server.port, window });
    } catch (e) {
      if ((e as { code?: string }).code !== "ERR_BUSY" || attempt >= BUSY_ATTEMPTS) throw e;
      busyRetries++;
      await new Promise((r) => setTimeout(r, backoffDelay(attempt)));
    }
  }
}

async function session(): Promise<void> {
  let ex;
  try {
    ex = await openRetryingBusy();
  } catch (e) {
    failedHandshakes++;
    note(e);
    return;
  }
  let next = 0;
  const worker = async () => {
    while (next < perSession) {
      next++;
      const m = randomBytes(randomInt(0, maxSize + 1));
      try {
        const reply = await ex.request(m);
        if (!Buffer.from(reply).equals(m)) corrupted++;
        else {
          received++;
          bytes += m.length;
        }
      } catch (e) {
        note(e);
      }
    }
  };
  // `window` requests in flight per session; the session answers them in order, so an echo that
  // matches its own request proves order as well as integrity.
  await Promise.all(Array.from({ length: window }, worker));
  await ex.close();
}

await Promise.all(servers.map((s) => s.command("reset")));
const started = performance.now();
const deadline = setTimeout(() => {
  console.error(`soak: not finished after ${values["timeout-seconds"]} s`);
  process.exit(2);
}, Number(values["timeout-seconds"]) * 1000);
await Promise.all(Array.from({ length: sessions }, session));
clearTimeout(deadline);
const seconds = (performance.now() - started) / 1000;
const reports = await Promise.all(servers.map((s) => s.command("report")));
await Promise.all(servers.map((s) => s.stop()));

const expected = sessions * perSession;
// Everything not received intact is lost: failed sessions' messages, errors, and missing replies.
lost = expected - received - corrupted;
const ok = failedHandshakes === 0 && lost === 0 && corrupted === 0;
console.log(`soak: ${sessions} ${protocol} sessions x ${perSession} messages (0..${maxSize} B, window ${window}) against ${workers > 1 ? `${workers} ${values.server} server processes on one port` : `a ${values.server} server`} in ${seconds.toFixed(1)} s`);
console.log(`  replies intact and in order: ${received} of ${expected}; ${(received / seconds).toFixed(0)} msg/s, ${(bytes / seconds / 1e6).toFixed(1)} MB/s each way`);
console.log(`  failed handshakes: ${failedHandshakes}; lost replies: ${lost}; corrupted replies: ${corrupted}`);
console.log(`  handshakes refused busy and retried: ${busyRetries} (server overloaded: shed, then served)`);
reports.forEach((report, i) => {
  const who = workers > 1 ? `server ${i}` : "server";
  console.log(`  ${who}: peak RSS ${report.peakRssMB!.toFixed(0)} MB, event-loop delay p99 ${report.eldP99Ms!.toFixed(2)} ms, max ${report.eldMaxMs!.toFixed(2)} ms`);
});
const curve = (reports[0] as Record<string, unknown> | undefined)?.curveJobs as { inline: number; pool: number; refused?: number } | undefined;
if (curve && curve.inline + curve.pool > 0) console.log(`  server curve steps (v3): ${curve.inline} inline, ${curve.pool} in the worker pool, ${curve.refused ?? 0} refused busy${workers > 1 ? " (server 0)" : ""}`);
if (errors.size) console.log(`  errors: ${[...errors].map(([k, n]) => `${k} x${n}`).join(", ")}`);
console.log(ok ? "soak: ok" : "soak: FAILED");
process.exit(ok ? 0 : 1);
