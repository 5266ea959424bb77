/**
 * How the load generator opens a connection of each kind and exchanges messages over it. The secure
 * protocols go through the client library (what applications use); the baselines through the same
 * Transport (raw TCP) or node:tls, with the same per-tick write batching as the library.
 */
import { readFileSync } from "node:fs";
import * as tls from "node:tls";
import { PROTOCOL_NAMES, type Wire, isRegisteredProtocol, legacy, protocolNamed } from "@nstp/core";
import { defaultTransport } from "@nstp/core/node";
import { type Session, connect } from "@nstp/client";
import { Deframer, frame } from "./framing.ts";
import { BASELINES, type Protocol } from "./report-types.ts";
import { BENCH_PASSWORD, BENCH_USER } from "./users.ts";

/** A registry version (core's registry.ts) or one of the baselines. */
export type BenchProtocol = Protocol | (string & {});


/** A connection that sends messages and resolves each with its echo, in order. */
export interface Exchanger {
  request(m: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
  /** TLS only: the negotiated cipher suite. */
  readonly cipher?: string;
}

const CA = readFileSync(new URL("../fixtures/tls-cert.pem", import.meta.url));

export interface OpenOptions {
  port: number;
  /** Requests in flight (the reference protocol's lockstep is 1). */
  window?: number;
  username?: string;
  password?: string;
  psk?: Uint8Array;
  crypto?: import("@nstp/core").CryptoBackend;
  /** Where the client's v2 AES-GCM runs when the placement says so (noble). */
  pool?: import("@nstp/core/pool").CryptoPool;
}

export async function open(protocol: BenchProtocol, opts: OpenOptions): Promise<Exchanger> {
  if (isRegisteredProtocol(protocol)) return openNstp(protocol, opts);
  if (protocol === "tcp") return openTcp(opts.port);
  if (protocol === "tls") return openTls(opts.port);
  throw new Error(`unknown protocol ${protocol} (known: ${[...PROTOCOL_NAMES, ...BASELINES].join(", ")})`);
}

async function openNstp(protocol: string, opts: OpenOptions): Promise<Exchanger> {
  const session: Session = await connect({
    protocol,
    port: opts.port,
    username: opts.username ?? BENCH_USER,
    password: opts.psk ? undefined : (opts.password ?? BENCH_PASSWORD),
    psk: opts.psk,
    deviceSalt: legacy.DEMO_DEVICE_SALT,
    crypto: opts.crypto,
    pool: opts.pool,
    limits: { window: opts.window ?? protocolNamed(protocol).defaults.window, handshakeTimeoutMs: 60_000 },
  });
  return { request: (m) => session.request(m), close: () => session.close() };
}

/** FIFO request/echo matching over a [u32 length][payload] stream, one write per tick. */
class FramedExchanger implements Exchanger {
  private readonly waiting: { resolve(m: Uint8Array): void; reject(e: Error): void }[] = [];
  private readonly deframer = new Deframer();
  private outbox: Uint8Array[] = [];
  private queued = false;
  private failed: Error | undefined;
  cipher?: string;
  private readonly writeBytes: (b: Uint8Array) => void;
  private readonly end: () => void;

  constructor(write: (b: Uint8Array) => void, end: () => void) {
    this.writeBytes = write;
    this.end = end;
  }

  onData(chunk: Uint8Array): void {
    this.deframer.push(chunk, (m) => this.waiting.shift()?.resolve(m.slice()));
  }

  onClose(): void {
    this.failed = new Error("connection closed");
    for (const w of this.waiting.splice(0)) w.reject(this.failed);
  }

  request(m: Uint8Array): Promise<Uint8Array> {
    if (this.failed) return Promise.reject(this.failed);
    this.outbox.push(m);
    if (!this.queued) {
      this.queued = true;
      queueMicrotask(() => {
        this.queued = false;
        const batch = this.outbox;
        this.outbox = [];
        this.writeBytes(frame(batch));
      });
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  async close(): Promise<void> {
    this.end();
  }
}

async function openTcp(port: number): Promise<Exchanger> {
  const transport = await defaultTransport();
  let ex!: FramedExchanger;
  const wire: Wire = await transport.dial({ host: "127.0.0.1", port, timeoutMs: 10_000 }, (w) => {
    ex = new FramedExchanger((b) => w.write(b), () => w.end());
    return { data: (c) => ex.onData(c), drain() {}, close: () => ex.onClose() };
  });
  void wire;
  return ex;
}

async function openTls(port: number): Promise<Exchanger> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      ca: CA,
      servername: "localhost",
      minVersion: "TLSv1.3",
      ciphersuites: "TLS_AES_256_GCM_SHA384",
    } as tls.ConnectionOptions);
    const ex = new FramedExchanger((b) => socket.write(b), () => socket.end());
    socket.on("data", (c: Buffer) => ex.onData(c));
    socket.on("close", () => ex.onClose());
    socket.once("error", reject);
    socket.once("secureConnect", () => {
      ex.cipher = socket.getCipher()?.standardName ?? socket.getCipher()?.name;
      socket.setNoDelay(true);
      resolve(ex);
    });
  });
}
