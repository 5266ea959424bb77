/**
 * The bench's load generator process. One scenario per run; prints one JSON line with its samples.
 * Every reply is compared with the bytes sent before it counts; a wrong one aborts the run.
 */
import { parseArgs } from "node:util";
import { legacy, utf8 } from "@nstp/core";
import { getBackend } from "@nstp/core/node";
import { CryptoPool } from "@nstp/core/pool";
import { clearKeyCache } from "@nstp/client";
import { type BenchProtocol, type Exchanger, open } from "./conns.ts";
import { BENCH_PASSWORD, BENCH_USER, coldPassword, storeUserName, storeUserPsk } from "./users.ts";
import { stalledFlood as openStalledFlood, stallingFlights } from "@nstp/testkit";
import { percentile, sortNumbers } from "./stats.ts";

const { values } = parseArgs({
  options: {
    scenario: { type: "string" },
    protocol: { type: "string", default: "v2" },
    port: { type: "string" },
    size: { type: "string", default: "64" },
    window: { type: "string", default: "1" },
    concurrency: { type: "string", default: "1" },
    duration: { type: "string", default: "1" },
    warmup: { type: "string", default: "0.3" },
    reps: { type: "string", default: "1" },
    samples: { type: "string", default: "20" },
    cold: { type: "boolean", default: false },
    users: { type: "string", default: "64" },
    "run-id": { type: "string", default: String(Date.now()) },
    crypto: { type: "string", default: "native" },
    aead: { type: "string", default: "auto" },
  },
  strict: true,
});

const protocol = values.protocol as BenchProtocol;
const port = Number(values.port);
const crypto = getBackend(values.crypto!);
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Every reply is checked against what was sent, for every protocol alike. Short ones by a loop: two
 * Buffer views per 64-byte message were a sixth of the load generator's time (bench --profile).
 */
function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  if (a.length <= 256) {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Connect-to-authenticated latency at concurrency 1; cold runs the client's PBKDF2 each time. */
async function latency() {
  const samples: number[] = [];
  const n = Number(values.samples);
  for (let i = 0; i < n + 2; i++) {
    if (values.cold) clearKeyCache();
    const t = now();
    const ex = await open(protocol, { port, crypto });
    const dt = now() - t;
    await ex.close();
    if (i >= 2) samples.push(dt); // two warm-up connections
  }
  return { samples };
}

/** Handshakes per second with `concurrency` clients connecting in a loop (warm keys). */
async function rate() {
  const c = Number(values.concurrency);
  const run = async (seconds: number) => {
    let count = 0;
    const end = now() + seconds * 1000;
    await Promise.all(Array.from({ length: c }, async () => {
      while (now() < end) {
        const ex = await open(protocol, { port, crypto });
        count++;
        void ex.close();
      }
    }));
    return count / seconds;
  };
  await open(protocol, { port, crypto }).then((e) => e.close()); // derive the client key once
  await run(Number(values.warmup));
  const reps: number[] = [];
  for (let r = 0; r < Number(values.reps); r++) reps.push(await run(Number(values.duration)));
  return { samples: reps };
}

/** `users` distinct users the server has never seen handshake at once; their keys are derived first. */
async function cold() {
  const n = Number(values.users);
  const names = Array.from({ length: n }, (_, i) => `cold-${values["run-id"]}-${i}`);
  // The clients' keys are derived before the clock starts: the server's derivations are measured.
  const pool = new CryptoPool();
  const psks = await Promise.all(names.map((u) =>
    pool.pbkdf2(utf8(coldPassword(u)), legacy.pskSalt(legacy.DEMO_DEVICE_SALT, utf8(u)), legacy.PBKDF2_ITERATIONS, 32)));
  await pool.destroy();
  const t = now();
  const latencies = await Promise.all(names.map(async (username, i) => {
    const ex = await open(protocol, { port, username, psk: psks[i], crypto });
    const dt = now() - t;
    await ex.close();
    return dt;
  }));
  const elapsed = (now() - t) / 1000;
  return { samples: [n / elapsed], latencies };
}

/**
 * Each of `users` store users (store-0..) handshakes once (v2), `concurrency` at a time: against a
 * fresh server every lookup misses its cache (cold); run again, every record is cached (warm).
 */
async function storeUsers() {
  const n = Number(values.users);
  const c = Number(values.concurrency);
  const names = Array.from({ length: n }, (_, i) => storeUserName(i));
  const psks = names.map(storeUserPsk);
  let next = 0;
  const t = now();
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < n) {
      const i = next++;
      const ex = await open("v2", { port, username: names[i], psk: psks[i], crypto });
      await ex.close();
    }
  }));
  return { samples: [n / ((now() - t) / 1000)] };
}

/** The pool's PBKDF2 rate in this runtime: what cold handshakes are compared with. */
async function pbkdf2Rate() {
  const pool = new CryptoPool();
  const salt = new Uint8Array(16);
  const job = () => pool.pbkdf2(utf8("x"), salt, legacy.PBKDF2_ITERATIONS, 32);
  await Promise.all(Array.from({ length: pool.threads }, job)); // threads up and warm
  const n = Number(values.users);
  const t = now();
  await Promise.all(Array.from({ length: n }, job));
  const r = n / ((now() - t) / 1000);
  await pool.destroy();
  return { samples: [r], threads: pool.threads };
}

/** Echo throughput with `window` messages in flight; round trips recorded at window 1. */
async function throughput() {
  const size = Number(values.size);
  const window = Number(values.window);
  const payloads = Array.from({ length: 16 }, (_, i) => {
    const p = crypto.randomBytes(size);
    if (size > 0) p[0] = i;
    return p;
  });
  // The pure-JS backend seals and opens in a worker pool, as the measured placement says.
  const pool = crypto.name === "noble" && values.aead !== "inline" ? new CryptoPool({ backend: crypto }) : undefined;
  const ex = await open(protocol, { port, window, crypto, pool });
  const info = { cipher: ex.cipher };
  const run = async (seconds: number) => {
    let sent = 0, received = 0;
    const rtts: number[] = [];
    let failure: Error | undefined;
    const end = now() + seconds * 1000;
    await new Promise<void>((done) => {
      let inflight = 0;
      const issue = () => {
        const p = payloads[sent++ & 15]!;
        const t = window === 1 ? now() : 0;
        inflight++;
        ex.request(p).then((reply) => {
          inflight--;
          if (!equal(reply, p)) failure ??= new Error(`reply ${received} does not match what was sent`);
          received++;
          if (window === 1) rtts.push(now() - t);
          if (!failure && now() < end) issue();
          else if (inflight === 0) done();
        }, (e: Error) => {
          failure ??= e;
          if (--inflight === 0) done();
        });
      };
      for (let i = 0; i < window; i++) issue();
    });
    if (failure) throw failure;
    return { msgPerSec: received / seconds, rtts };
  };
  await run(Number(values.warmup));
  const reps: number[] = [];
  let rtts: number[] = [];
  for (let r = 0; r < Number(values.reps); r++) {
    const t = now();
    const res = await run(Number(values.duration));
    // Rate over the time actually taken (the last replies drain after the deadline).
    reps.push(res.msgPerSec * Number(values.duration) / ((now() - t) / 1000));
    rtts = rtts.concat(res.rtts);
  }
  await ex.close();
  await pool?.destroy();
  return { samples: reps, rtts: window === 1 ? summarise(rtts) : undefined, ...info };
}

/** One v2 client sending a message every 100 ms; its round trips. */
async function ping() {
  const ex: Exchanger = await open(protocol, { port, crypto });
  const rtts: number[] = [];
  const end = now() + Number(values.duration) * 1000;
  const p = utf8("ping");
  while (now() < end) {
    const t = now();
    const reply = await ex.request(p);
    if (!equal(reply, p)) throw new Error("ping reply does not match");
    rtts.push(now() - t);
    await sleep(100);
  }
  await ex.close();
  return { samples: rtts };
}

/** Opens `concurrency` connections as fast as possible that never authenticate; holds them. */
async function flood() {
  const net = await import("node:net");
  const n = Number(values.concurrency);
  const sockets: import("node:net").Socket[] = [];
  let refusedOrClosed = 0;
  const junk = [
    Buffer.alloc(0), // connects and says nothing
    Buffer.from([0, 0x4e, 0x53, 0x54, 0x50, 2, 5, 0x6d, 0x61, 0x6c, 0x6c, 0x6f]), // v2 preamble, then silence
    Buffer.concat([Buffer.from([0, 0x4e, 0x53, 0x54, 0x50, 2, 1, 0x78, 0, 48]), Buffer.alloc(48, 7)]), // forged message 1
  ];
  const t = now();
  for (let i = 0; i < n; i++) {
    const s = net.connect({ host: "127.0.0.1", port });
    s.on("error", () => {});
    s.on("close", () => refusedOrClosed++);
    const j = junk[i % junk.length]!;
    if (j.length) s.on("connect", () => s.write(j));
    sockets.push(s);
    if (i % 100 === 99) await sleep(0);
  }
  const openedIn = now() - t;
  await sleep(Number(values.duration) * 1000);
  for (const s of sockets) s.destroy();
  return { samples: [openedIn], closedByServer: refusedOrClosed };
}

/**
 * Holds `concurrency` stalled handshakes open for `duration` seconds, reopening each one the server
 * closes (evicted or timed out), as the attacker of the admission finding does.
 */
async function stalledFlood() {
  const t = now();
  // Reopens bounded by what the server could accept in the time, not by a count the flood would reach.
  const flood = await openStalledFlood(port, Number(values.concurrency), { flights: stallingFlights(BENCH_USER), maxOpens: Number(values.duration) * 100_000 });
  const openedIn = now() - t;
  await sleep(Number(values.duration) * 1000);
  const stats = { opened: flood.opened, openAtEnd: flood.open };
  flood.stop();
  return { samples: [openedIn], ...stats };
}

/**
 * A new honest client arriving during a flood: after `warmup` seconds, `samples` times each, a new
 * v2 and a new legacy connection, handshake and one echo; the time from connect to the echo.
 */
async function join() {
  // The client's PBKDF2 runs once, before the clock: what is measured is the server's admission.
  const psk = await legacy.derivePsk(crypto, { username: BENCH_USER, password: BENCH_PASSWORD, deviceSalt: legacy.DEMO_DEVICE_SALT });
  await sleep(Number(values.warmup) * 1000);
  const lat: Record<"v2" | "legacy", number[]> = { v2: [], legacy: [] };
  const p = utf8("hello during the flood");
  for (let i = 0; i < Number(values.samples); i++) {
    for (const proto of ["v2", "legacy"] as const) {
      const t = now();
      const ex = await open(proto, { port, psk, crypto });
      const reply = await ex.request(p);
      lat[proto].push(now() - t);
      await ex.close();
      // The bench server echoes: anything else is a wrong reply.
      if (!equal(reply, p)) throw new Error(`${proto} echo does not match`);
    }
    await sleep(50);
  }
  return { samples: lat.v2, v2: lat.v2, legacy: lat.legacy };
}

function summarise(xs: number[]) {
  const s = sortNumbers(xs);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

const scenarios: Record<string, () => Promise<object>> = { latency, rate, cold, "pbkdf2-rate": pbkdf2Rate, throughput, ping, flood, "stalled-flood": stalledFlood, join, "store-users": storeUsers };
const fn = scenarios[values.scenario!];
if (!fn) throw new Error(`unknown scenario ${values.scenario}`);
const result = await fn();
console.log(JSON.stringify(result));
process.exit(0);
