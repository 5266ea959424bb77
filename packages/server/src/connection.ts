/**
 * Drives one accepted connection: feeds bytes to the protocol machine, performs what it asks (key
 * lookups, writes), runs the application's handler, and owns the connection's timers. It sees the
 * socket only as a Wire, so the Bun and Node builds run exactly this code.
 */
import { type CryptoBackend, type Logger, type Output, type Wire, type WireEvents, NstpError, legacy, toNstpError, utf8 } from "@nstp/core";
import type { KeyStore } from "./credentials.ts";
import type { ServerStats } from "./stats.ts";

export interface SessionInfo {
  readonly username: string;
  readonly remoteAddress: string;
  readonly protocol: "legacy";
}

/** The application's answer to one message; exactly one reply per message, in order. */
export type MessageHandler = (message: Uint8Array, session: SessionInfo) => Uint8Array | string | Promise<Uint8Array | string>;

export interface ConnectionLimits {
  maxMessageSize: number;
  /** Time from accept to an authenticated session. */
  handshakeTimeoutMs: number;
  /** Time a partly received record may wait for its remaining bytes. */
  recordTimeoutMs: number;
  /** Messages received but not yet answered before reading pauses. */
  maxPendingMessages: number;
  /** Reply bytes queued for a slow reader before reading pauses. */
  writeHighWaterMark: number;
}

export interface ConnectionContext {
  crypto: CryptoBackend;
  keys: KeyStore;
  dummyKey(username: string): Uint8Array;
  handler: MessageHandler;
  limits: ConnectionLimits;
  log: Logger;
  stats: ServerStats;
  onClosed(conn: ServerConnection): void;
  /** Told of every failed authentication, by source address. */
  onAuthFailed(remoteAddress: string): void;
}

export class ServerConnection implements WireEvents {
  private readonly machine: legacy.LegacyServer;
  private readonly wire: Wire;
  private readonly ctx: ConnectionContext;
  private handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  private recordTimer: ReturnType<typeof setTimeout> | undefined;
  private session: SessionInfo | undefined;
  private replies: Promise<void> = Promise.resolve();
  private pending = 0;
  private paused = false;
  private done = false;
  /** Aborts the key derivation this connection waits for, when it goes away. */
  private readonly abort = new AbortController();

  constructor(wire: Wire, ctx: ConnectionContext) {
    this.wire = wire;
    this.ctx = ctx;
    this.machine = new legacy.LegacyServer({ crypto: ctx.crypto, maxMessageSize: ctx.limits.maxMessageSize });
    this.handshakeTimer = setTimeout(() => this.fail(new NstpError("ERR_TIMEOUT", "handshake deadline passed")), ctx.limits.handshakeTimeoutMs);
    ctx.stats.connectionOpened();
    ctx.stats.handshaking++;
  }

  get established(): boolean {
    return this.session !== undefined;
  }

  data(chunk: Uint8Array): void {
    if (this.done) return;
    this.ctx.stats.bytesIn(chunk.length);
    try {
      this.apply(this.machine.receive(chunk));
    } catch (e) {
      this.fail(e);
      return;
    }
    this.armRecordTimer();
  }

  drain(): void {
    this.updateFlow();
  }

  close(error?: Error): void {
    if (!this.done) {
      this.finish(this.session ? "peer closed" : "peer closed during handshake", error ? { cause: error.message } : {});
    }
  }

  /** Closes the connection from our side (server shutdown). */
  shutdown(): void {
    if (this.done) return;
    this.finish("server shutting down", {});
    this.wire.end();
  }

  private apply(outputs: Output[]): void {
    for (const o of outputs) {
      if (this.done) return;
      switch (o.type) {
        case "send":
          this.write(o.data);
          break;
        case "need-key":
          void this.resolveKey(o.username);
          break;
        case "established":
          clearTimeout(this.handshakeTimer);
          this.handshakeTimer = undefined;
          this.session = { username: o.username, remoteAddress: this.wire.remoteAddress, protocol: "legacy" };
          this.ctx.stats.handshaking--;
          this.ctx.stats.handshakeSucceeded();
          this.ctx.log.debug("session established", { user: o.username, remote: this.wire.remoteAddress });
          break;
        case "message":
          this.enqueue(o.data);
          break;
      }
    }
  }

  private async resolveKey(username: string): Promise<void> {
    let psk: Uint8Array | undefined;
    try {
      // lookup() runs synchronously up to its first await: a synchronous ERR_BUSY lands in the catch
      // below before apply() writes the session nonce, so the client sees "busy", not a failed proof.
      psk = await this.ctx.keys.lookup(username, this.abort.signal);
    } catch (e) {
      this.fail(toNstpError(e, "ERR_AUTH", "key lookup failed"));
      return;
    }
    if (this.done) return;
    try {
      // An unknown user proceeds with a dummy key and fails at the proof, exactly like a wrong password.
      this.apply(this.machine.provideKey(psk ?? this.ctx.dummyKey(username)));
    } catch (e) {
      this.fail(e);
    }
  }

  private enqueue(message: Uint8Array): void {
    const session = this.session!;
    this.pending++;
    this.ctx.stats.messageIn(message.length);
    this.updateFlow();
    // Replies are chained so that they leave in the order the messages arrived.
    this.replies = this.replies.then(async () => {
      if (this.done) return;
      try {
        const reply = await this.ctx.handler(message, session);
        if (this.done) return;
        const bytes = typeof reply === "string" ? utf8(reply) : reply;
        this.write(this.machine.sealReply(bytes));
        this.ctx.stats.messageOut(bytes.length);
      } catch (e) {
        this.fail(toNstpError(e, "ERR_PROTOCOL", "message handler failed"));
        return;
      }
      this.pending--;
      this.updateFlow();
    });
  }

  private write(data: Uint8Array): void {
    this.ctx.stats.bytesOut(data.length);
    this.wire.write(data);
  }

  /** Pauses reading while too many messages wait for replies or too many reply bytes wait to leave. */
  private updateFlow(): void {
    if (this.done) return;
    const { maxPendingMessages, writeHighWaterMark } = this.ctx.limits;
    const congested = this.pending >= maxPendingMessages || this.wire.bufferedAmount >= writeHighWaterMark;
    if (congested && !this.paused) {
      this.paused = true;
      this.wire.pause();
    } else if (!congested && this.paused) {
      this.paused = false;
      this.wire.resume();
    }
  }

  /** A partly received record must complete within recordTimeoutMs, however slowly it dribbles. */
  private armRecordTimer(): void {
    if (this.done || !this.established) return;
    if (this.machine.hasPartialInput) {
      this.recordTimer ??= setTimeout(
        () => this.fail(new NstpError("ERR_TIMEOUT", "record incomplete or forged at the deadline")),
        this.ctx.limits.recordTimeoutMs,
      );
    } else if (this.recordTimer) {
      clearTimeout(this.recordTimer);
      this.recordTimer = undefined;
    }
  }

  private fail(e: unknown): void {
    if (this.done) return;
    const err = toNstpError(e, "ERR_PROTOCOL", "connection failed");
    if (err.code === "ERR_AUTH") this.ctx.onAuthFailed(this.wire.remoteAddress);
    if (!this.session) this.ctx.stats.handshakeFailed(err.code);
    else this.ctx.stats.sessionFailed(err.code);
    this.finish("connection closed", { code: err.code, reason: err.message });
    // Every failure looks the same to the peer: no error message, just the close.
    this.wire.end();
  }

  private finish(msg: string, fields: Record<string, string>): void {
    this.done = true;
    this.abort.abort();
    if (!this.session) this.ctx.stats.handshaking--;
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.recordTimer);
    this.ctx.stats.connectionClosed();
    this.ctx.log.debug(msg, { user: this.session?.username, remote: this.wire.remoteAddress, ...fields });
    this.ctx.onClosed(this);
  }
}
