/**
 * Drives one accepted connection: feeds bytes to the protocol machine, performs what it asks (key
 * lookups, writes), runs the application's handler, and owns the connection's timers. It sees the
 * socket only as a Wire, so the Bun and Node builds run exactly this code.
 */
import { AeadPlacement, Flow, type Output, Outbox, type OutboxOwner, PartialInputDeadline, type PartialInputOwner, type ProtocolName, REFUSAL_SIGNAL, type ServerMachine, type Wire, type WireEvents, NstpError, toNstpError, utf8 } from "@nstp/core";
import { OrderedAead } from "@nstp/core/pool";
import type { ConnectionContext, SessionInfo } from "./connection-context.ts";
import { type HandshakeHost, ServerHandshake } from "./handshake.ts";
import { isThenable } from "./thenable.ts";
import { SessionClock, type SessionEndReason } from "./lifetime.ts";
import type { UnfinishedHolder } from "./unfinished-budget.ts";

type Reply = Uint8Array | string | undefined;

/**
 * What the application's handler sees of its session. A class, not an object literal with a
 * closure: an idle session then holds one small object, not three (the fleet bench).
 */
class Session implements SessionInfo {
  readonly username: string;
  readonly remoteAddress: string;
  readonly protocol: ProtocolName;
  readonly #conn: ServerConnection;
  constructor(username: string, remoteAddress: string, protocol: ProtocolName, conn: ServerConnection) {
    this.username = username;
    this.remoteAddress = remoteAddress;
    this.protocol = protocol;
    this.#conn = conn;
  }

  send(message: Uint8Array | string): Promise<void> {
    return this.#conn.push(message);
  }
}

export class ServerConnection implements WireEvents, HandshakeHost, OutboxOwner, PartialInputOwner, UnfinishedHolder {
  private readonly machine: ServerMachine;
  private readonly wire: Wire;
  private readonly ctx: ConnectionContext;
  private readonly partialInput: PartialInputDeadline;
  /** The idle timeout, maximum lifetime and write-stall deadline, from establishment on. */
  private clock: SessionClock | undefined;
  /** The handshake's lookup, budget and admission state; dropped once established. */
  private handshake: ServerHandshake | undefined;
  private session: SessionInfo | undefined;
  /** Replies still being computed by an async handler; later replies wait behind them. */
  private replies: Promise<void> | undefined;
  private asyncReplies = 0;
  /** Messages received and not yet answered. */
  private pending = 0;
  /** Plaintext replies and pushes gathered in this turn, sealed together by flush(). */
  private readonly outbox = new Outbox(this);
  /** Reading paused while congested; pushes wait here for the socket to drain. */
  private readonly flow: Flow;
  /** Closed, failed or ended: nothing more is done (done). */
  private finished = false;
  /** Failed or closed by the peer: queued writes are dropped (a graceful shutdown still sends them). */
  private dead = false;
  /** Where AEAD runs once established: inline, or in the worker pool where the measured placement says so. */
  private readonly aead: AeadPlacement;
  /** v2 ping chunks from the client seen so far (each batch of them is answered: answerPings). */
  private pingsSeen = 0;
  /** What our unfinished message retains, as last told to the server's budget (ctx.unfinished). */
  private unfinishedReported = 0;

  constructor(wire: Wire, ctx: ConnectionContext) {
    this.wire = wire;
    this.flow = new Flow(wire, ctx.limits.writeHighWaterMark);
    this.ctx = ctx;
    const machine = (this.machine = ctx.newMachine());
    this.aead = new AeadPlacement(machine, ctx.aeadPool ? new OrderedAead(ctx.aeadPool, ctx.crypto) : undefined);
    this.partialInput = new PartialInputDeadline(machine, ctx.limits.recordTimeoutMs, this, ctx.limits.messageTimeoutMs);
    // Arms the handshake deadline; dropped once established (onEstablished).
    this.handshake = new ServerHandshake(machine, ctx, this);
    ctx.stats.connectionOpened();
    ctx.stats.handshaking++;
  }

  get done(): boolean {
    return this.finished;
  }

  get established(): boolean {
    return this.session !== undefined;
  }

  get remoteAddress(): string {
    return this.wire.remoteAddress;
  }

  /**
   * Closed to make room for a newcomer (admission.ts). A newcomer that is itself the one to go
   * (nothing received yet) gets the busy signal, as a refusal at accept; so does a handshake the
   * server has not answered yet (refuse()).
   */
  evict(refused = false): void {
    if (refused) {
      this.write(REFUSAL_SIGNAL);
      this.fail(new NstpError("ERR_BUSY", "evicted: refused as it arrived at the cap"));
    } else {
      this.refuse(new NstpError("ERR_BUSY", "evicted: the handshake stalled longest when the cap was reached"));
    }
  }

  /**
   * Ends a handshake for the server's own reasons (evicted at the cap, or its deadline passed while
   * the server owed the answer). If the server has not answered the client's guess yet (v2 and v3:
   * message 2 not sent, the v3 curve step included), the version's busy signal goes in its place:
   * the client retries (ERR_BUSY) instead of reading the close as a wrong password and giving up.
   * In a reconnect storm, a v3 share waiting for its curve step, or a v2 handshake on a loop too
   * busy to answer before the deadline, was closed silently and its device gave up with ERR_AUTH
   * (the fleet bench). Nothing about the password is told: its verdict has not been sent (a v3 guess
   * reserved for the curve step stays charged, as before: the budget bounds the curve work a source
   * can cause; a step refused in overload was never run, and its guess is refunded: handshake.ts
   * curve()). After the answer, and for the reference protocol after its session nonce, the close
   * is silent like any failure.
   */
  refuse(err: NstpError): void {
    if (this.done) return;
    this.sendBusy();
    this.fail(err);
  }

  /** The version's busy signal, while it still offers one (before its answer has left; never after establishment). */
  private sendBusy(): void {
    const busy = this.session ? undefined : this.machine.busySignal();
    if (busy) this.write(busy);
  }

  /**
   * The handshake deadline: a client whose guess is here and unanswered (the server was too slow:
   * its key, its judgement or its curve step still pending) is refused with the busy signal; one
   * that has not sent its guess in time, or did not confirm after the answer, is closed silently, and
   * only then is its source marked as one whose handshakes stall (admission.ts): the server's own
   * slowness is not held against the client.
   */
  deadlinePassed(): void {
    const err = new NstpError("ERR_TIMEOUT", "handshake deadline passed");
    if (this.handshake?.guessReserved || this.machine.judgeable) {
      this.refuse(err);
    } else {
      this.ctx.admission.stalled(this.wire.remoteAddress);
      this.fail(err);
    }
  }

  /** The outbox's turn has ended: what it gathered is sealed and written (OutboxOwner). */
  flushOutbox(): void {
    this.flush();
  }

  /** A partly received record or frame did not complete in time (PartialInputOwner). */
  partialInputExpired(): void {
    this.fail(new NstpError("ERR_TIMEOUT", "record incomplete or forged at the deadline"));
  }

  /**
   * A message begun in several frames did not complete within messageTimeoutMs (PartialInputOwner):
   * the session ends as the server's other limits end it, its replies and close chunk sent.
   */
  partialMessageExpired(): void {
    this.end("message_timeout");
  }

  /** Our unfinished message grew slowest when the server's sum of them ran over (UnfinishedHolder). */
  overBudget(): void {
    this.end("message_budget");
  }

  /** Records or frames completed so far (the session clock's idle timeout watches it). */
  get inputProgress(): number {
    return this.machine.inputProgress;
  }

  /** Bytes written and not yet taken by the kernel (the session clock's write-stall deadline). */
  get unsentBytes(): number {
    return this.wire.bufferedAmount;
  }

  /** Bytes the kernel has taken so far (the session clock's write-stall deadline). */
  get bytesSent(): number {
    return this.wire.bytesSent;
  }

  /** The user this connection is (or is trying to become), for closing a removed user's sessions. */
  get user(): string | undefined {
    return this.session?.username ?? this.handshake?.claimedUser;
  }

  data(chunk: Uint8Array): void {
    if (this.done) return;
    this.ctx.stats.bytesIn(chunk.length);
    let outputs: Output[] | undefined;
    try {
      // Frames opened in the worker pool are delivered later, in order.
      outputs = this.aead.receive(chunk, (later) => this.receivedLater(later), (e) => this.fail(e));
    } catch (e) {
      this.fail(e);
      return;
    }
    if (outputs && !this.received(() => outputs)) return;
    this.watchPartialInput();
    if (!outputs) this.updateFlow();
  }

  /** Frames opened in the worker pool, delivered in order. */
  private receivedLater(outputs: Output[]): void {
    if (this.done || !this.received(() => outputs)) return;
    // A message begun in these frames is timed from now (the read only split them).
    this.watchPartialInput();
    this.updateFlow();
  }

  /**
   * Applies what the machine made of received bytes; then the replies computed synchronously while
   * handling them leave together, in as few frames as fit. False if the connection failed.
   */
  received(outputs: () => Output[]): boolean {
    try {
      this.outbox.hold(() => {
        this.apply(outputs());
        if (!this.done) this.handshake?.moved();
      });
    } catch (e) {
      this.fail(e);
      return false;
    }
    this.clock?.noteInput();
    this.answerPings();
    this.flush();
    return true;
  }

  /**
   * Established, for versions whose clients ping: a read that brought pings is answered with one
   * ping, unless a frame leaves in this tick anyway or one is being sealed in the pool
   * (docs/PROTOCOL.md §v2 "Keepalive and dead peers"): the client's keepalive hears a live server
   * within its deadline. Before key confirmation nothing is sent, and the confirming ping is not
   * answered (onEstablished counts it as seen).
   */
  private answerPings(): void {
    if (!this.session || this.done) return;
    const n = this.machine.pingsReceived ?? 0;
    if (n === this.pingsSeen) return;
    this.pingsSeen = n;
    if (!this.outbox.empty || this.aead.pendingOut) return;
    try {
      const frame = this.machine.ping?.();
      if (frame) this.write(frame);
    } catch (e) {
      this.fail(e);
    }
  }

  drain(): void {
    this.updateFlow();
  }

  close(error?: Error): void {
    this.ctx.stats.sockets--;
    this.dead = true;
    if (!this.done) {
      this.finish(this.session ? "peer closed" : "peer closed during handshake", error ? { cause: error.message } : {});
    }
  }

  /**
   * Closes the connection from our side (server shutdown): replies already computed leave first, and
   * a v2 session ends with a close chunk so the client can tell a clean end from a cut. A handshake
   * whose guess the server has not answered gets the busy signal, as when it is evicted (refuse()):
   * a client that sent message 1 to a server going down for a restart would read a bare close as a
   * wrong password and give up (ERR_AUTH), where it should come back to the restarted server.
   */
  shutdown(msg = "server shutting down"): void {
    if (this.done) return;
    try {
      // Only an established session gets its replies and a close chunk: before key confirmation the
      // server sends nothing after message 2 (docs/PROTOCOL.md §v2 "Key confirmation").
      // A version without a close chunk seals nothing for it.
      if (this.session) this.flush({ close: true });
      else this.sendBusy();
    } catch {
      // The session is ending either way.
    }
    this.finish(msg, {});
    this.endWire();
  }

  /**
   * The server ends the session (idle, too old, its user removed, or a message unfinished at its
   * deadline) as at shutdown: the replies already computed leave, v2 ends with a close chunk, and the
   * close is bounded by the flush deadline. A session whose client has taken none of our bytes for
   * the write-stall limit is closed at once instead: what waits for it is dropped, since waiting the
   * flush deadline for a peer that stopped reading would only hold it longer.
   */
  end(reason: SessionEndReason): void {
    if (this.done) return;
    this.ctx.stats.sessionEnded(reason);
    const msg = `session ended: ${reason.replace("_", " ")}`;
    if (reason !== "write_stalled") {
      this.shutdown(msg);
      return;
    }
    this.dead = true;
    this.finish(msg, {});
    this.wire.destroy();
  }

  /**
   * Graceful end: stop reading, let the replies to messages already received be computed and sent,
   * then close (v2 with its close chunk). A connection still in the handshake just closes.
   */
  async drainAndClose(): Promise<void> {
    if (this.done) return;
    if (!this.session) {
      this.shutdown();
      return;
    }
    this.flow.set(true);
    await this.replies;
    this.shutdown();
  }

  /** Closes at once, dropping anything queued (the graceful deadline passed). */
  destroy(): void {
    if (this.done) return;
    this.dead = true;
    this.finish("closed at the shutdown deadline", {});
    this.wire.destroy();
  }

  /** Ends the connection once every queued write (sealed in the pool, perhaps) has gone out. */
  private endWire(): void {
    if (this.aead.pendingOut) void this.aead.writesDone().then(() => this.wire.end());
    else this.wire.end();
  }

  /** Performs what the machine asks, in order. */
  apply(outputs: Output[]): void {
    for (const o of outputs) {
      if (this.done) return;
      switch (o.type) {
        case "send":
          this.write(o.data);
          break;
        case "need-key":
          this.handshake?.lookup(o.username);
          break;
        case "need-curve":
          this.handshake?.curve(o.job);
          break;
        case "established":
          this.onEstablished(o.username);
          break;
        case "message":
          this.onMessage(o.data);
          break;
        case "closed":
          // The client ended the session cleanly: answer what it sent, then close our side too.
          this.flush({ close: true });
          this.finish("peer closed the session", {});
          this.endWire();
          return;
      }
    }
  }

  private onEstablished(username: string): void {
    const protocol = this.machine.protocol!;
    this.session = new Session(username, this.wire.remoteAddress, protocol, this);
    this.ctx.stats.handshaking--;
    this.handshake?.established(username);
    this.handshake = undefined;
    this.ctx.stats.handshakeSucceeded(protocol);
    this.ctx.log.debug("session established", { user: username, remote: this.wire.remoteAddress, protocol });
    this.pingsSeen = this.machine.pingsReceived ?? 0;
    this.clock = new SessionClock(this.ctx.limits, this.machine.capabilities.peerPings, this, this.ctx.clocks);
  }

  private onMessage(message: Uint8Array): void {
    const session = this.session!;
    this.pending++;
    this.ctx.stats.messageIn(message.length);
    if (this.asyncReplies === 0) {
      // Fast path: a synchronous handler answers at once, in order, with no promise per message.
      let reply: Reply | PromiseLike<Reply>;
      try {
        reply = this.ctx.handler(message, session);
      } catch (e) {
        this.fail(toNstpError(e, "ERR_PROTOCOL", "message handler failed"));
        return;
      }
      if (!isThenable(reply)) {
        this.answered(reply);
        return;
      }
      this.chain(() => reply);
    } else {
      this.chain(() => this.ctx.handler(message, session));
    }
    this.updateFlow();
  }

  /** Queues an asynchronous reply behind the ones before it, so replies leave in message order. */
  private chain(compute: () => Reply | PromiseLike<Reply>): void {
    this.asyncReplies++;
    this.replies = (this.replies ?? Promise.resolve()).then(async () => {
      if (this.done) return;
      try {
        const reply = await compute();
        if (this.done) return;
        this.asyncReplies--;
        this.answered(reply);
        this.outbox.schedule();
        // A reply of nothing (v2 allows it) writes nothing, and nothing else would resume a read
        // paused for replies owed: the session stalled until its idle timeout (attacker review, round 3).
        if (reply === undefined) this.updateFlow();
      } catch (e) {
        this.fail(toNstpError(e, "ERR_PROTOCOL", "message handler failed"));
      }
    });
  }

  private answered(reply: Reply): void {
    this.pending--;
    if (reply !== undefined) this.queue(typeof reply === "string" ? utf8(reply) : reply);
    else if (this.machine.capabilities.oneReplyPerMessage) this.fail(new NstpError("ERR_PROTOCOL", "this protocol version needs a reply to every message"));
  }

  private queue(bytes: Uint8Array): void {
    this.outbox.push(bytes);
    this.ctx.stats.messageOut(bytes.length);
    // Bound what one turn can gather: a large burst is sealed as it grows.
    if (this.outbox.bytes >= this.ctx.limits.writeHighWaterMark) this.flush();
  }

  /** SessionInfo.send: a message the client did not ask for (v2, v3). */
  push(message: Uint8Array | string): Promise<void> {
    if (this.done) return Promise.reject(new NstpError("ERR_CLOSED", "session closed"));
    if (!this.machine.capabilities.mayPush) return Promise.reject(new NstpError("ERR_PROTOCOL", "this protocol version cannot send unasked"));
    this.queue(typeof message === "string" ? utf8(message) : message);
    this.outbox.schedule();
    return this.flow.writable(this.outbox.bytes);
  }

  /** Seals everything gathered into as few frames as fit, and writes it in one call. */
  private flush(opts: { close?: boolean } = {}): void {
    if (this.done || (this.outbox.empty && !opts.close)) return;
    const bytes = this.outbox.bytes;
    const batch = this.outbox.take();
    try {
      this.aead.seal(
        batch,
        bytes,
        // Written before seal returns (inline), so a wire that copies writes lets the version reuse
        // its output buffer (SealOptions.transient).
        { close: opts.close, transient: this.wire.copiesWrites },
        (wire) => {
          // Sealed in the pool after the peer went away: nothing more to write.
          if (this.dead) return;
          this.write(wire);
          this.updateFlow();
        },
        (e) => this.fail(e),
      );
    } catch (e) {
      this.fail(e);
    }
  }

  write(data: Uint8Array): void {
    if (!data.length) return;
    this.ctx.stats.bytesOut(data.length);
    this.wire.write(data);
    // What the kernel did not take is watched until it does (the write-stall deadline).
    this.clock?.noteOutput();
  }

  /**
   * Pauses reading while too many messages wait for replies or too many reply bytes wait to leave
   * (on the socket, or to be opened in the pool); pushes waiting for the socket wake once it drains.
   */
  private updateFlow(): void {
    if (this.done) return;
    const { maxPendingMessages, writeHighWaterMark } = this.ctx.limits;
    this.flow.set(this.pending >= maxPendingMessages || this.flow.writeCongested() || this.aead.pendingInBytes >= writeHighWaterMark);
    // Time not reading is left out of the record deadline, and of the message deadline up to its
    // length (core driver/deadline.ts); a peer that does not read is the write-stall deadline's.
    this.partialInput.readingPaused(this.flow.paused);
  }

  /**
   * A partly received record or frame must complete within recordTimeoutMs, and a message begun in
   * several frames within messageTimeoutMs (PartialInputDeadline).
   */
  private watchPartialInput(): void {
    // Nothing partial and nothing reported: the common read of whole messages reads one getter more.
    if (this.done || !this.established || (this.unfinishedReported === 0 && !this.machine.hasPartialInput)) return;
    const held = this.machine.partialMessageBytes;
    if (held !== this.unfinishedReported) {
      this.unfinishedReported = held;
      // May end this session (or another) to keep the sum under its limit.
      this.ctx.unfinished.set(this, held);
      if (this.done) return;
    }
    this.partialInput.watch();
  }

  fail(e: unknown): void {
    if (this.done) return;
    const err = toNstpError(e, "ERR_PROTOCOL", "connection failed");
    if (!this.session) this.ctx.stats.handshakeFailed(err.code);
    else this.ctx.stats.sessionFailed(err.code);
    this.dead = true;
    this.finish("connection closed", { code: err.code, reason: err.message });
    // Every failure looks the same to the peer: no error message, just the close.
    this.wire.end();
  }

  private finish(msg: string, fields: Record<string, string>): void {
    // Once: a clean close whose last seal fails has finished through fail() already.
    if (this.finished) return;
    this.finished = true;
    if (!this.session) this.ctx.stats.handshaking--;
    // Its source stays proven for a day from now (proven-sources.ts), and its user's trust likewise.
    else {
      this.ctx.lookupGate?.proven.sessionEnded(this.wire.remoteAddress);
      this.ctx.budget.sessionEnded(this.session.username, this.wire.remoteAddress);
    }
    this.handshake?.ended(this.session !== undefined);
    this.partialInput.cancel();
    if (this.unfinishedReported) {
      this.unfinishedReported = 0;
      this.ctx.unfinished.set(this, 0);
    }
    this.clock?.stop();
    // Bytes sealed in the pool may still be written after this: they must not wake the clock again.
    this.clock = undefined;
    this.outbox.clear();
    this.flow.release();
    // Every end passes here once (finished): the machine wipes what it owns (machine.ts dispose),
    // after its last seal (a graceful end flushed before finishing) and once every batch handed to
    // the worker pool is back (AeadPlacement.afterPending).
    this.aead.afterPending(() => this.machine.dispose());
    this.ctx.stats.connectionClosed();
    this.ctx.log.debug(msg, { user: this.session?.username, remote: this.wire.remoteAddress, ...fields });
    this.ctx.onClosed(this);
  }
}
