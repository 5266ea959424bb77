/**
 * Test and bench support for the admission and guessing-budget attacks, from raw sockets (nothing
 * from the protocol code): a flood of handshakes that stall, each reopened when the server closes it
 * (the attacker of finding 1), and one wrong-password guess in either protocol (finding 3). Every
 * loop is bounded in count; every wait in time.
 */
import * as net from "node:net";
import { randomBytes } from "node:crypto";

const V2_HEAD = [0, 0x4e, 0x53, 0x54, 0x50, 2];
const v2Preamble = (user: Buffer) => Buffer.concat([Buffer.from([...V2_HEAD, user.length]), user]);
const legacyHello = (user: Buffer) => Buffer.concat([Buffer.of(user.length), user, randomBytes(16)]);

/** What stalled handshakes send before falling silent: each stops short of a step it could complete. */
export function stallingFlights(username = "alice"): Buffer[] {
  const user = Buffer.from(username);
  return [
    Buffer.alloc(0), // connects and says nothing
    v2Preamble(user).subarray(0, 4), // part of a preamble
    v2Preamble(user), // a whole preamble, then silence
    Buffer.concat([v2Preamble(user), Buffer.from([0, 48]), randomBytes(20)]), // part of message 1
    legacyHello(user), // a reference hello: the server sends its nonce and waits for a proof
  ];
}

export interface StalledFlood {
  /** Connections opened, first and reopened. */
  readonly opened: number;
  /** Connections open now. */
  readonly open: number;
  stop(): void;
}

/**
 * Keeps `n` stalled handshakes open against `port`, reopening each one the server closes, until
 * stop() or `maxOpens` connections in all. Resolves once the first `n` have connected (or failed).
 */
export async function stalledFlood(port: number, n: number, opts: { maxOpens?: number; flights?: Buffer[]; host?: string } = {}): Promise<StalledFlood> {
  const flights = opts.flights ?? stallingFlights();
  const maxOpens = opts.maxOpens ?? n * 50;
  const sockets = new Set<net.Socket>();
  let opened = 0;
  let stopped = false;
  const openOne = (i: number): Promise<void> =>
    new Promise((resolve) => {
      if (stopped || opened >= maxOpens) return resolve();
      opened++;
      const s = net.connect({ host: opts.host ?? "127.0.0.1", port });
      sockets.add(s);
      const flight = flights[i % flights.length]!;
      s.on("error", () => {});
      s.once("connect", () => {
        if (flight.length) s.write(flight);
        resolve();
      });
      s.once("close", () => {
        sockets.delete(s);
        resolve();
        // The attacker of finding 1: every slot the server frees is taken again at once.
        if (!stopped) setImmediate(() => void openOne(i));
      });
    });
  const first: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    first.push(openOne(i));
    if (i % 100 === 99) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(first);
  return {
    get opened() {
      return opened;
    },
    get open() {
      return sockets.size;
    },
    stop() {
      stopped = true;
      for (const s of sockets) s.destroy();
    },
  };
}

/**
 * One wrong-password attempt that the server must judge: a v2 message 1 of random bytes, or a
 * reference proof of random bytes after the session nonce. Resolves once the server closed the
 * connection, or after `timeoutMs` (then `closed` is false).
 */
export function wrongGuess(port: number, protocol: "v2" | "legacy", username: string, opts: { localAddress?: string; timeoutMs?: number } = {}): Promise<{ closed: boolean }> {
  const user = Buffer.from(username);
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress: opts.localAddress });
    const timer = setTimeout(() => (s.destroy(), resolve({ closed: false })), opts.timeoutMs ?? 10_000);
    let got = 0;
    s.on("error", () => {});
    s.on("close", () => (clearTimeout(timer), resolve({ closed: true })));
    s.once("connect", () => {
      if (protocol === "v2") s.write(Buffer.concat([v2Preamble(user), Buffer.from([0, 48]), randomBytes(48)]));
      else s.write(legacyHello(user));
    });
    s.on("data", (d: Buffer) => {
      got += d.length;
      // The reference sends its 8-byte session nonce first; the proof follows it.
      if (protocol === "legacy" && got >= 8 && got - d.length < 8) s.write(randomBytes(32));
    });
  });
}
