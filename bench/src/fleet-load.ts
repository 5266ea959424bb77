/**
 * The fleet bench's device process: holds many idle sessions to one server, as a fleet of devices
 * does. Opens --sessions of --protocol (each a handshake and one echo, --concurrency at a time),
 * prints one JSON line, then answers commands on stdin, one per line, each with one JSON line:
 * - "check": every session echoes once more (how many answered, intact);
 * - "storm": v2/legacy with --reconnect: waits until every session that lost its server has been
 *   re-established with connectWithBackoff (jittered) and reports the times from losing it to
 *   having it back, and the retries (busy and other). Closing stdin closes everything and exits.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { NstpError, legacy, utf8 } from "@nstp/core";
import { type ConnectOptions, RETRYABLE, type Session, backoffDelay, connectWithBackoff } from "@nstp/client";
import { type BenchProtocol, type Exchanger, open } from "./conns.ts";
import { BENCH_PASSWORD, BENCH_USER } from "./users.ts";

const { values } = parseArgs({
  options: {
    protocol: { type: "string", default: "v2" },
    port: { type: "string" },
    sessions: { type: "string", default: "100" },
    concurrency: { type: "string", default: "64" },
    reconnect: { type: "boolean", default: false },
    /** Give up on the storm after this many seconds. */
    "storm-timeout": { type: "string", default: "300" },
  },
  strict: true,
});

const protocol = values.protocol as BenchProtocol;
const port = Number(values.port);
const n = Number(values.sessions);
const PAYLOAD = utf8("fleet device reading: 23.5 C");
const equal = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** A device that reconnects when its server goes (the storm): its session, and its outage record. */
interface Device {
  ex?: Exchanger;
  session?: Session;
  lostAt?: number;
  backAfterMs?: number;
  /** connectWithBackoff threw what it does not retry: this device is out. */
  gaveUp?: boolean;
}
const devices: Device[] = Array.from({ length: n }, () => ({}));
const storm = { busy: 0, retried: 0, failed: 0 };
/** Why devices gave up (non-retryable errors), by code and message: should stay empty. */
const gaveUp = new Map<string, number>();

const connectOptions: ConnectOptions = {
  protocol: protocol === "legacy" ? "legacy" : "v2",
  port,
  username: BENCH_USER,
  password: BENCH_PASSWORD,
  deviceSalt: legacy.DEMO_DEVICE_SALT,
  limits: { handshakeTimeoutMs: 60_000 },
};

/** Opens (or reopens) a reconnecting device's session, and watches for its loss. */
async function attach(d: Device): Promise<void> {
  // The library's own backoff (200 ms doubling to 30 s, jittered), as a device would use it: with
  // the waits capped at 5 s, 10,000 devices kept about 2,700 attempts a second on a server that could
  // complete far fewer, each newcomer evicting a handshake in progress at the cap (the Bun storm:
  // 361,067 busy retries and 8,754 devices not back after 255 s on the loaded host).
  const s = await connectWithBackoff(connectOptions, {
    attempts: Infinity,
    onRetry: (e: NstpError) => (e.code === "ERR_BUSY" ? storm.busy++ : storm.retried++),
  });
  d.session = s;
  d.ex = { request: (m) => s.request(m), close: () => s.close() };
  if (d.lostAt !== undefined) d.backAfterMs = performance.now() - d.lostAt;
  // The iterator ends (or throws) when the session does: the server went away.
  void (async () => {
    try {
      for await (const _ of s.messages());
    } catch {
      // Lost, not closed by us: reconnect below.
    }
    if (closing) return;
    d.lostAt = performance.now();
    d.backAfterMs = undefined;
    attach(d).catch((e: unknown) => {
      storm.failed++;
      d.gaveUp = true;
      const why = e instanceof NstpError ? `${e.code}: ${e.message}` : String(e);
      gaveUp.set(why, (gaveUp.get(why) ?? 0) + 1);
    });
  })();
}

let closing = false;

/** Handshakes the server refused busy (or cut) while the sessions were opened, then retried. */
let openRetries = 0;

/**
 * Opens one session and echoes once, as a device would: what waiting can cure (the server busy, or
 * its handshake deadline passed under the load of this very burst: a v3 client that sent message 3
 * late finds its session cut at its first request) is retried with jittered backoff: a busy refusal
 * until OPEN_GIVE_UP_MS have passed (a v3 burst of 256 handshakes on a 1-thread pool is refused in
 * part by design, and on a loaded host 20 refusals in a row happen), anything else at most 20 times;
 * a wrong password or anything else fails the run.
 */
const OPEN_GIVE_UP_MS = 240_000;
async function openRetrying(): Promise<Exchanger> {
  const giveUpAt = performance.now() + OPEN_GIVE_UP_MS;
  for (let failures = 0, busy = 0; ; ) {
    let ex: Exchanger | undefined;
    try {
      ex = await open(protocol, { port, window: 1, password: BENCH_PASSWORD });
      if (!equal(await ex.request(PAYLOAD), PAYLOAD)) throw new Error("wrong echo");
      return ex;
    } catch (e) {
      void ex?.close().catch(() => {});
      if (!(e instanceof NstpError) || !RETRYABLE.has(e.code) || performance.now() > giveUpAt) throw e;
      if (e.code === "ERR_BUSY") busy++;
      else if (++failures > 20) throw e;
      openRetries++;
      await new Promise((r) => setTimeout(r, backoffDelay(failures + busy - 1, { initialDelayMs: 200, maxDelayMs: 5000 })));
    }
  }
}

async function openAll(): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const d = devices[next++]!;
      if (values.reconnect) {
        await attach(d);
        if (!equal(await d.ex!.request(PAYLOAD), PAYLOAD)) throw new Error("wrong echo");
      } else {
        d.ex = await openRetrying();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, Number(values.concurrency)) }, worker));
}

async function check(): Promise<{ ok: number; failed: number }> {
  const r = await Promise.allSettled(devices.map(async (d) => !d.gaveUp && equal(await d.ex!.request(PAYLOAD), PAYLOAD)));
  const ok = r.filter((x) => x.status === "fulfilled" && x.value).length;
  return { ok, failed: n - ok };
}

async function waitStorm(): Promise<Record<string, unknown>> {
  const end = performance.now() + Number(values["storm-timeout"]) * 1000;
  const pending = () => devices.filter((d) => !d.gaveUp && (d.lostAt === undefined || d.backAfterMs === undefined)).length;
  while (pending() > 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 100));
  const times = devices.flatMap((d) => (d.backAfterMs === undefined ? [] : [d.backAfterMs]));
  return { back: times.length, pending: pending(), times, ...storm, gaveUp: Object.fromEntries(gaveUp) };
}

const t0 = performance.now();
await openAll();
console.log(JSON.stringify({ opened: n, ms: performance.now() - t0, retries: openRetries }));
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const reply = line === "check" ? check() : line === "storm" ? waitStorm() : Promise.resolve({ error: `unknown command ${line}` });
  void reply.then((r) => console.log(JSON.stringify(r)));
});
rl.on("close", async () => {
  closing = true;
  await Promise.race([Promise.allSettled(devices.map((d) => d.ex?.close())), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(0);
});
