/**
 * Drives one client connection over any registered version's ClientMachine: the handshake (core's
 * straight-line clientHandshake), then requests, replies, messages() and the keepalive. The batching,
 * deadlines, flow control and AEAD placement are core/driver's, shared with the server. It sees the
 * socket only as a Wire, so the Bun and Node builds run exactly this code.
 *
 * Incoming messages answer the oldest outstanding request(); any other message (a version that may
 * push sends unasked) goes to the messages() iterator. Both queues are bounded: a full one pauses reading, so a
 * slow consumer slows the server down through TCP instead of growing memory.
 */
import { Keepalive } from "./keepalive.ts";
import { AeadPlacement, type ClientMachine, Deadline, Fifo, Flow, HandshakeReader, type Output, NstpError, Outbox, type PooledAead, type Wire, type WireEvents, clientHandshake, toNstpError, utf8 } from "@nstp/core";

interface Request {
  data: Uint8Array;
  /** When it was written (Date.now()), for the reply deadline. */
  sentAt: number;
  resolve(reply: Uint8Array): void;
  reject(e: NstpError): void;
}

export interface SessionLimits {
  handshakeTimeoutMs: number;
  replyTimeoutMs: number;
  /**
   * Requests sent before their replies arrive. A Dart reference server needs 1 (lockstep); our server
   * takes a pipeline. Default: 1 for the reference protocol, 4096 for v2.
   */
  window: number;
  /** Requests queued locally before request() refuses more. */
  maxQueued: number;
  /** Unrequested messages held for messages() before reading pauses. */
  maxBuffered: number;
  /** Bytes queued on the socket above which send() waits. */
  writeHighWaterMark: number;
  /**
   * v2: a ping goes out after this long without a frame from us, so that the server's idle timeout
   * (default 5 minutes) does not end a session that only listens, and the session fails with
   * ERR_TIMEOUT after twice this long without an authenticated frame from the server (keepalive.ts);
   * 0 never. Default 30 s.
   */
  keepaliveMs: number;
  /**
   * v2, v3: the silence (no authenticated frame from the server) after which the session fails with
   * ERR_TIMEOUT; default, or 0: two keepalive intervals. Longer suits a server that may be slow to
   * answer a ping (a loaded host); never shorter than one interval.
   */
  deadPeerMs?: number;
}

export class ClientSession {
  private readonly machine: ClientMachine;
  private wire: Wire | undefined;
  private readonly limits: SessionLimits;
  private readonly queue = new Fifo<Request>();
  private readonly inflight = new Fifo<Request>();
  /** Unrequested messages (v2, v3), waiting for messages(). */
  private readonly incoming: Uint8Array[] = [];
  private readonly readers: { resolve(r: IteratorResult<Uint8Array>): void; reject(e: NstpError): void }[] = [];
  /** Messages given to send() and requests let into the window, sealed together at the end of the turn. */
  // An owner of its own, not the session: flushOutbox() would otherwise be public API of ClientSession
  // (the server's connections, many per process, implement OutboxOwner themselves instead).
  private readonly outbox = new Outbox({ flushOutbox: () => this.flushTurn() });
  /** The first turn's flush after establishment checks that the server has our key confirmation. */
  private confirmDue = false;
  /** close() waiting for the last reply. */
  private readonly idleWaiters: (() => void)[] = [];
  /** The handshake deadline, then the reply deadline (one timer for the oldest request in flight). */
  private readonly deadline = new Deadline();
  private keepalive: Keepalive | undefined;
  private flow: Flow | undefined;
  /** The server's bytes while the handshake reads them (clientHandshake); undefined after. */
  private handshake: HandshakeReader | undefined;
  private failure: NstpError | undefined;
  private endedCleanly = false;
  private readyResolve!: () => void;
  private readyReject!: (e: NstpError) => void;
  /** Settles when the handshake completes or fails. */
  readonly ready: Promise<void>;
  readonly username: string;
  readonly protocol: string;

  /** Where AEAD runs once established: inline, or in the worker pool where the measured placement says so. */
  private readonly aead: AeadPlacement;

  constructor(machine: ClientMachine, limits: SessionLimits, pool?: PooledAead) {
    this.machine = machine;
    this.aead = new AeadPlacement(machine, pool);
    this.username = machine.username;
    this.protocol = machine.protocol;
    this.limits = limits;
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
  }

  /** Called once the wire exists: arms the handshake deadline and runs the handshake on it. */
  attach(wire: Wire): void {
    this.wire = wire;
    const flow = (this.flow = new Flow(wire, this.limits.writeHighWaterMark));
    const reader = (this.handshake = new HandshakeReader((paused) => flow.set(paused)));
    this.deadline.once(this.limits.handshakeTimeoutMs, () => this.fail(new NstpError("ERR_TIMEOUT", "handshake deadline passed")));
    clientHandshake(this.machine, { write: (bytes) => wire.write(bytes), read: () => reader.read() }).then(
      (rest) => this.established(rest),
      (e: unknown) => this.fail(e),
    );
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
    return new Promise<Uint8Array>((resolve, reject) => {
      this.queue.push({ data, sentAt: 0, resolve, reject });
      this.outbox.schedule();
    });
  }

  /** Where the version may push (v2, v3): sends a message that expects no reply. Resolves when the socket's queue is below its mark. */
  send(message: Uint8Array | string): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.machine.capabilities.mayPush) return Promise.reject(new NstpError("ERR_PROTOCOL", "the reference protocol pairs every message with a reply: use request()"));
    this.outbox.push(typeof message === "string" ? utf8(message) : message);
    this.outbox.schedule();
    return this.flow?.writable() ?? Promise.resolve();
  }

  /** Messages the server sent that no request() was waiting for; ends when the session ends. */
  messages(): AsyncIterableIterator<Uint8Array> {
    const next = (): Promise<IteratorResult<Uint8Array>> => {
      const m = this.incoming.shift();
      if (m) {
        this.updateFlow();
        return Promise.resolve({ value: m, done: false });
      }
      if (this.failure) {
        return this.endedCleanly || this.failure.code === "ERR_CLOSED"
          ? Promise.resolve({ value: undefined, done: true })
          : Promise.reject(this.failure);
      }
      return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
    };
    const it: AsyncIterableIterator<Uint8Array> = {
      next,
      return: () => Promise.resolve({ value: undefined, done: true }),
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /**
   * Waits for the replies still due (each bounded by the reply deadline), then closes: v2 and v3 send
   * their close chunk first, so the server can tell a clean end from a cut connection.
   */
  async close(): Promise<void> {
    if (!this.failure && (this.queue.length || this.inflight.length)) await new Promise<void>((res) => this.idleWaiters.push(res));
    if (!this.failure && this.machine.established) {
      this.seal(this.outbox.take(), { close: true });
      await this.aead.writesDone();
    }
    this.endedCleanly = true;
    this.fail(new NstpError("ERR_CLOSED", "session closed"), false);
  }

  /** The callbacks the transport calls. */
  events(): WireEvents {
    return {
      data: (chunk) => this.onData(chunk),
      drain: () => this.onDrain(),
      close: (error) => this.onClose(error),
    };
  }

  private onData(chunk: Uint8Array): void {
    if (this.failure) return;
    if (this.handshake) {
      this.handshake.push(chunk);
      return;
    }
    try {
      const outputs = this.aead.receive(chunk, (later) => this.applyOrFail(later), (e) => this.fail(e));
      if (outputs) this.apply(outputs);
    } catch (e) {
      this.fail(e);
    }
    this.keepalive?.noteInput();
  }

  private applyOrFail(outputs: Output[]): void {
    if (this.failure) return;
    try {
      this.apply(outputs);
    } catch (e) {
      this.fail(e);
    }
    this.keepalive?.noteInput();
  }

  private onDrain(): void {
    if (this.failure) return;
    this.updateFlow();
    this.pump();
  }

  /** The machine says what a close in its state means (busy, a failed guess, or a plain close). */
  private onClose(error?: Error): void {
    if (this.failure) return;
    const end = this.machine.endOfStream(error);
    // A reset where the machine reads a verdict: our server answers a wrong password with an orderly
    // close (FIN), never a reset. A server that drops a handshake to make room (admission) while our
    // next bytes sit unread in its socket resets the connection, and the reset discards what it had
    // sent; retryable, so that a reconnect storm does not read it as a wrong password.
    this.fail(error && end.code === "ERR_AUTH" ? new NstpError("ERR_CLOSED", "connection reset during the handshake", { cause: error }) : end);
  }

  /**
   * The handshake is done: requests may go. What the machine produced after establishment, then what
   * arrived while the handshake's last step ran, take the session's own path, in order.
   */
  private established(rest: Output[]): void {
    if (this.failure) return;
    const leftover = this.handshake!.takeRest();
    this.handshake = undefined;
    this.deadline.cancel();
    this.readyResolve();
    this.startKeepalive();
    this.apply(rest);
    for (const chunk of leftover) this.onData(chunk);
    this.updateFlow();
    this.pump();
    // Where the server counts the session only once our first frame authenticates (v2, v3:
    // docs/PROTOCOL.md §v2 "Key confirmation"), what the application sends in this turn confirms it;
    // if it sends nothing, the turn's flush sends a ping.
    if (this.machine.ping) {
      this.confirmDue = true;
      this.outbox.schedule();
    }
  }

  private apply(outputs: Output[]): void {
    for (const o of outputs) {
      if (this.failure) return;
      if (o.type === "send") this.wire!.write(o.data);
      else if (o.type === "message") this.deliver(o.data);
      else if (o.type === "closed") {
        // The server ended the session cleanly (close chunk): nothing was cut off.
        this.endedCleanly = true;
        this.fail(new NstpError("ERR_CLOSED", "the server closed the session"), false);
      }
    }
    if (this.inflight.length || this.queue.length) this.pump();
  }

  /** Versions that can ping keep an idle session alive with one, and find a dead server by its silence. */
  private startKeepalive(): void {
    const m = this.machine;
    if (!m.ping || this.limits.keepaliveMs <= 0) return;
    this.keepalive = new Keepalive(this.limits.keepaliveMs, {
      sent: () => m.framesSent,
      heard: () => m.inputProgress,
      // Never past a frame still being sealed in the pool (its nonce comes first, so it must reach
      // the wire first): that frame is on its way, and counts as sent at the next look.
      ping: () => {
        if (!this.aead.pendingOut) this.ping();
      },
      dead: (silentMs) => this.fail(new NstpError("ERR_TIMEOUT", `no authenticated frame from the server for ${silentMs} ms`)),
    }, this.limits.deadPeerMs || undefined);
  }

  private ping(): void {
    if (this.failure) return;
    try {
      this.wire!.write(this.machine.ping!());
    } catch (e) {
      this.fail(e);
    }
  }

  private deliver(data: Uint8Array): void {
    const req = this.inflight.shift();
    if (req) {
      req.resolve(data);
      this.watchReplies();
      if (!this.inflight.length && !this.queue.length) for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    const reader = this.readers.shift();
    if (reader) reader.resolve({ value: data, done: false });
    else {
      this.incoming.push(data);
      this.updateFlow();
    }
  }

  /** The end of a turn: what it gathered leaves; the first one after establishment confirms our key. */
  private flushTurn(): void {
    this.pump();
    if (!this.confirmDue || this.failure) return;
    this.confirmDue = false;
    if (this.machine.unconfirmed) this.ping();
  }

  private pump(): void {
    if (this.failure || !this.machine.established || !this.wire) return;
    const batch = this.outbox.take();
    const sentAt = Date.now();
    while (this.queue.length && this.inflight.length < this.limits.window) {
      const req = this.queue.shift()!;
      req.sentAt = sentAt;
      this.inflight.push(req);
      batch.push(req.data);
    }
    if (batch.length) this.seal(batch, {});
    this.watchReplies();
  }

  /** Seals a batch inline, or in the pool where the placement says so (writes stay in order). */
  private seal(batch: Uint8Array[], opts: { close?: boolean }): void {
    try {
      // Written before seal returns (inline), so a wire that copies writes lets the version reuse its
      // output buffer (SealOptions.transient).
      // A batch sealed in the pool that comes back after the session failed is dropped.
      this.aead.seal(batch, batch.reduce((n, b) => n + b.length, 0), { close: opts.close, transient: this.wire?.copiesWrites }, (bytes) => {
        if (!this.failure) this.wire?.write(bytes);
      }, (e) => this.fail(e));
    } catch (e) {
      this.fail(e);
    }
  }

  /** Reading pauses while unrequested messages pile up unread; senders waiting for the socket wake once it drains. */
  private updateFlow(): void {
    this.flow?.set(this.incoming.length >= this.limits.maxBuffered);
  }

  /**
   * One timer covers the oldest request in flight. It is not moved per message (a pipelined session
   * answers hundreds of thousands a second): when it fires it checks the oldest request's age and
   * either fails the session or sleeps for the time that request has left.
   */
  private watchReplies(): void {
    // Asked after every reply: armed already, it costs no clock read and no closure (the 64 B echo's
    // profile showed both).
    if (this.deadline.armed || !this.machine.established || !this.inflight.length) return;
    const timeout = this.limits.replyTimeoutMs;
    this.deadline.arm(Math.max(1, this.inflight.peek()!.sentAt + timeout - Date.now()), () => {
      const oldest = this.inflight.peek();
      if (!oldest || this.failure) return undefined;
      const left = oldest.sentAt + timeout - Date.now();
      if (left > 0) return left;
      this.fail(new NstpError("ERR_TIMEOUT", "no reply within the deadline"));
      return undefined;
    });
  }

  private fail(e: unknown, abort = true): void {
    if (this.failure) return;
    const err = toNstpError(e, "ERR_PROTOCOL", "session failed");
    this.failure = err;
    this.deadline.cancel();
    this.keepalive?.stop();
    this.handshake?.fail(err);
    this.outbox.clear();
    this.readyReject(err);
    for (const r of this.inflight.drain()) r.reject(err);
    for (const r of this.queue.drain()) r.reject(err);
    this.flow?.release(err);
    for (const w of this.idleWaiters.splice(0)) w();
    for (const r of this.readers.splice(0)) {
      if (this.endedCleanly || err.code === "ERR_CLOSED") r.resolve({ value: undefined, done: true });
      else r.reject(err);
    }
    if (abort) this.wire?.destroy();
    else this.wire?.end();
    // Every end comes here once: the machine wipes what it owns (machine.ts dispose), after any
    // batch still in the worker pool is back (a graceful close() has written its close chunk).
    this.aead.afterPending(() => this.machine.dispose());
  }
}
