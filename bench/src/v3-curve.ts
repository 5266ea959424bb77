/**
 * What v3's curve work costs, per handshake, in this runtime: the server's five scalar
 * multiplications (verifierShares: the unit the pool would run), the whole server machine (curve
 * plus transcript, HKDFs and MACs), the client's four multiplications, and the same server work for a
 * fake record (unknown user), which should cost the same. Each is checked to produce a working
 * handshake before it is timed. Prints one JSON line (CPU µs per handshake, median of rounds).
 *
 *   bun bench/src/v3-curve.ts [--ms 2000]        node bench/src/v3-curve.ts [--ms 2000]
 *
 * Measured 2026-11-26 on the shared 2-core development machine (load 5-8 from other work, so upper
 * bounds), three runs each, CPU µs per handshake:
 *   Bun 1.4.5:  server curve 3,750-6,000; fake record the same within noise; whole server machine
 *               4,300-8,100; client curve 3,400-7,100.
 *   Node 24.21: server curve 8,600-9,600; whole server machine 10,300-18,800; client 8,900-16,000.
 * The two constant-time multiplications of points that change per handshake (y·(X - w0·M) and y·L:
 * about 2.5 ms each on Bun, 3.8 ms on Node, scalar-blinded fixed window) dominate; the three
 * fixed-base ones (G, M, N, with tables) cost about 0.25 ms each on Bun and 0.8 ms on Node. So a
 * 64-client cold storm is 0.3-0.6 s of curve work for the server: it belongs in the worker pool
 * when the loop is busy (V3Server's deferCurve and need-curve exist for that).
 */
import { parseArgs } from "node:util";
import { utf8, v3, type Output } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { CryptoPool } from "@nstp/core/pool";

const { values } = parseArgs({ options: { ms: { type: "string", default: "2000" } }, strict: true });
const MS = Number(values.ms);
const crypto = nativeBackend;
const salt = crypto.randomBytes(16);
const keys = v3.proverKeysFromPsk(crypto, crypto.randomBytes(32), salt, utf8("alice"));
const record = v3.verifierFromProverKeys(keys);
const fake = new v3.FakeVerifiers(crypto).record(utf8("mallory"));
const shareP = v3.proverShare(v3.scalarFromBytes(keys.w0), v3.randomScalar(crypto));
const shareV = v3.verifierShares({ w0: record.w0, L: record.L, shareP, y: v3.randomScalar(crypto) }).shareV;
const sends = (outs: Output[]) => outs.flatMap((o) => (o.type === "send" ? [o.data] : []));

/**
 * µs of this process's CPU time per call (user + system: the machine is shared, and CPU time is what
 * a handshake takes from the event loop): median over rounds of ~100 ms each, after a warm-up round.
 */
function measure(f: () => void): number {
  const rounds: number[] = [];
  const end = performance.now() + MS;
  let warm = false;
  while (performance.now() < end || rounds.length < 3) {
    let calls = 0;
    const t = performance.now();
    const c = process.cpuUsage();
    while (performance.now() - t < 100) {
      f();
      calls++;
    }
    const used = process.cpuUsage(c);
    if (warm) rounds.push((used.user + used.system) / calls);
    warm = true;
  }
  rounds.sort((a, b) => a - b);
  return Math.round(rounds[rounds.length >> 1]! * 10) / 10;
}

function serverHandshake(rec: v3.Verifier): Uint8Array {
  const client = new v3.V3Client({ crypto, username: "alice", deviceSalt: salt, keys });
  const server = new v3.V3Server({ crypto, deviceSalt: salt });
  server.receive(sends(client.start())[0]!);
  return sends(server.provideVerifier(rec))[0]!;
}

// Check first: a real record completes a handshake; a fake one answers with a message 2 of the same size.
{
  const client = new v3.V3Client({ crypto, username: "alice", deviceSalt: salt, keys });
  const server = new v3.V3Server({ crypto, deviceSalt: salt });
  server.receive(sends(client.start())[0]!);
  const reply = client.receive(sends(server.provideVerifier(record))[0]!);
  if (server.receive(sends(reply)[0]!).at(-1)?.type !== "established") throw new Error("v3 handshake did not complete");
  if (serverHandshake(fake).length !== v3.MESSAGE2_SIZE) throw new Error("fake record answered differently");
}

const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? `bun ${process.versions.bun}` : `node ${process.versions.node}`;
const result = {
  runtime,
  serverCurveUs: measure(() => v3.verifierShares({ w0: record.w0, L: record.L, shareP, y: v3.randomScalar(crypto) })),
  serverCurveFakeUs: measure(() => v3.verifierShares({ w0: fake.w0, L: fake.L, shareP, y: v3.randomScalar(crypto) })),
  serverMachineUs: measure(() => serverHandshake(record)),
  clientCurveUs: measure(() => {
    const x = v3.randomScalar(crypto);
    v3.proverShare(v3.scalarFromBytes(keys.w0), x);
    v3.proverFinish(v3.scalarFromBytes(keys.w0), v3.scalarFromBytes(keys.w1), x, shareV);
  }),
};

/**
 * Placement (packages/core/src/crypto/placement.ts): one job's wall time inline and through an idle
 * 2-thread pool (the hand-over included), and 64 jobs at once (a cold storm's curve work) inline and
 * in the pool, with the longest the event loop went without a turn meanwhile (a 1 ms timer's lag).
 */
async function placement() {
  const pool = new CryptoPool({ threads: 2 });
  try {
    const job = (y = v3.randomScalar(crypto)) => ({ w0: record.w0, L: record.L, shareP, y });
    const y = v3.randomScalar(crypto);
    const there = await pool.verifierShares(job(y));
    if (there instanceof Error || v3.verifierShares(job(y)).Z.join() !== there.Z.join()) throw new Error("pool and inline differ");
    const median = async (n: number, f: () => unknown) => {
      const t: number[] = [];
      for (let i = 0; i < n; i++) {
        const s = performance.now();
        await f();
        t.push(performance.now() - s);
      }
      return Math.round(t.sort((a, b) => a - b)[n >> 1]! * 100) / 100;
    };
    const inlineJobMs = await median(20, () => v3.verifierShares(job()));
    const poolJobMs = await median(20, () => pool.verifierShares(job()));
    const lagDuring = async (f: () => Promise<unknown>) => {
      let last = performance.now(), maxLag = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        maxLag = Math.max(maxLag, now - last - 1);
        last = now;
      }, 1);
      await new Promise((r) => setTimeout(r, 5));
      const s = performance.now();
      await f();
      const wallMs = performance.now() - s;
      await new Promise((r) => setTimeout(r, 5));
      clearInterval(timer);
      return { wallMs: Math.round(wallMs), maxLoopLagMs: Math.round(maxLag * 10) / 10 };
    };
    const storm64Inline = await lagDuring(async () => {
      // Jobs arriving in one read each, as connections do: a macrotask apiece.
      await Promise.all(Array.from({ length: 64 }, () => new Promise((r) => setImmediate(() => r(v3.verifierShares(job()))))));
    });
    const storm64Pool = await lagDuring(() => Promise.all(Array.from({ length: 64 }, () => pool.verifierShares(job()))));
    return { inlineJobMs, poolJobMs, storm64Inline, storm64Pool };
  } finally {
    await pool.destroy();
  }
}

console.log(JSON.stringify({ ...result, placement: await placement() }));
