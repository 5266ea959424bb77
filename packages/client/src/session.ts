/**
 * Drives one client connection: the handshake, then request/reply over the protocol machine. It sees
 * the socket only as a Wire, so the Bun and Node builds run exactly this code.
 */
import { AuthError, type Output, NstpError, type Wire, type WireEvents, legacy, toNstpError, utf8 } from "@nstp/core";

interface Request {
  data: Uint8Array;
  resolve(reply: Uint8Array): void;
  reject(e: NstpError): void;
}

export interface SessionLimits {
  handshakeTimeoutMs: number;
  replyTimeoutMs: number;
  /** Requests sent before their replies arrive. The reference server needs 1 (lockstep). */
  window: number;
  /** Requests queued locally before request() refuses more. */
  maxQueued: number;
}

export class ClientSession {
  private readonly machine: legacy.LegacyClient;
  private wire: Wire | undefined;
  private readonly limits: SessionLimits;
  private readonly queue: Request[] = [];
  private readonly inflight: Request[] = [];
  private readonly unsettled = new Set<Promise<unknown>>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private failure: NstpError | undefined;
  private readyResolve!: () => void;
  private readyReject!: (e: NstpError) => void;
  /** Settles when the handshake completes or fails. */
  readonly ready: Promise<void>;
  readonly username: string;

  constructor(machine: legacy.LegacyClient, limits: SessionLimits) {
    this.machine = machine;
    this.username = machine.username;
    this.limits = limits;
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
  }

  /** Called once the wire exists: sends the hello and arms the handshake deadline. */
  attach(wire: Wire): void {
    this.wire = wire;
    this.timer = setTimeout(() => this.fail(new NstpError("ERR_TIMEOUT", "handshake deadline passed")), this.limits.handshakeTimeoutMs);
    this.apply(this.machine.start());
  }

  get closed(): boolean {
    return this.failure !== undefined;
  }

  request(message: Uint8Array | string): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.queue.length >= this.limits.maxQueued) {
      return Promise.reject(new NstpError("ERR_BUSY", `more than ${this.limits.maxQueued} requests queued`));
    }
    const data = typeof message === "string" ? utf8(message) : message;
    const p = new Promise<Uint8Array>((resolve, reject) => {
      this.queue.push({ data, resolve, reject });
      this.pump();
    });
    const tracked = p.then(() => {}, () => {}).finally(() => this.unsettled.delete(tracked));
    this.unsettled.add(tracked);
    return p;
  }

  /** Waits for the replies still due (each bounded by the reply deadline), then closes. */
  async close(): Promise<void> {
    while (!this.failure && this.unsettled.size) await Promise.all(this.unsettled);
    this.fail(new NstpError("ERR_CLOSED", "session closed"), false);
  }

  /** The callbacks the transport calls. */
  events(): WireEvents {
    return {
      data: (chunk) => this.onData(chunk),
      drain: () => this.pump(),
      close: (error) => this.onClose(error),
    };
  }

  private onData(chunk: Uint8Array): void {
    if (this.failure) return;
    try {
      this.apply(this.machine.receive(chunk));
    } catch (e) {
      this.fail(e);
    }
  }

  private onClose(error?: Error): void {
    if (this.failure) return;
    const state = this.machine.stateName;
    if (state === "helloSent") {
      // Our server refuses before sending the session nonce when it is at capacity.
      this.fail(new NstpError("ERR_BUSY", "server busy: it closed the connection before the handshake", error ? { cause: error } : undefined));
    } else if (state === "proofSent") {
      // The reference server closes without a word when our proof fails: wrong password or unknown user.
      this.fail(new AuthError("server closed the connection after our proof: wrong password or unknown user"));
    } else {
      const during = state === "established" ? "" : " during the handshake";
      this.fail(new NstpError("ERR_CLOSED", `server closed the connection${during}`, error ? { cause: error } : undefined));
    }
  }

  private apply(outputs: Output[]): void {
    for (const o of outputs) {
      if (o.type === "send") this.wire!.write(o.data);
      else if (o.type === "established") {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.readyResolve();
        this.pump();
      } else if (o.type === "message") {
        const req = this.inflight.shift()!;
        req.resolve(o.data);
        this.rearm();
        this.pump();
      }
    }
  }

  private pump(): void {
    if (this.failure || this.machine.stateName !== "established" || !this.wire) return;
    while (this.queue.length && this.inflight.length < this.limits.window) {
      const req = this.queue.shift()!;
      let record: Uint8Array;
      try {
        record = this.machine.sealMessage(req.data);
      } catch (e) {
        this.queue.unshift(req);
        this.fail(e);
        return;
      }
      this.inflight.push(req);
      this.wire.write(record);
    }
    this.rearm();
  }

  /** One deadline covers the oldest request in flight. */
  private rearm(): void {
    if (this.machine.stateName !== "established") return;
    clearTimeout(this.timer);
    this.timer = this.inflight.length
      ? setTimeout(() => this.fail(new NstpError("ERR_TIMEOUT", "no reply within the deadline")), this.limits.replyTimeoutMs)
      : undefined;
  }

  private fail(e: unknown, abort = true): void {
    if (this.failure) return;
    const err = toNstpError(e, "ERR_PROTOCOL", "session failed");
    this.failure = err;
    clearTimeout(this.timer);
    this.readyReject(err);
    for (const r of this.inflight.splice(0)) r.reject(err);
    for (const r of this.queue.splice(0)) r.reject(err);
    if (abort) this.wire?.destroy();
    else this.wire?.end();
  }
}
