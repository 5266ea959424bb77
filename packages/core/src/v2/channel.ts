/** The established v2 session, the same for both roles: one writer and one reader over Split's keys. */
import type { TransportKeys } from "../noise/handshake-state.ts";
import type { Output } from "../events.ts";
import { FrameReader } from "./reader.ts";
import { FrameWriter } from "./writer.ts";
import { REKEY_INTERVAL } from "./wire.ts";

export interface ChannelOptions {
  maxMessageSize: number;
  /** Frames per direction between Rekey() calls; only tests change it. */
  rekeyInterval?: number;
  /** Told once, when the first incoming frame has authenticated (the server's key confirmation). */
  onFirstFrame?: (out: Output[]) => void;
}

export class Channel {
  readonly writer: FrameWriter;
  readonly reader: FrameReader;
  readonly handshakeHash: Uint8Array;

  constructor(keys: TransportKeys, opts: ChannelOptions) {
    const interval = opts.rekeyInterval ?? REKEY_INTERVAL;
    this.writer = new FrameWriter(keys.send, interval);
    this.reader = new FrameReader(keys.receive, opts.maxMessageSize, interval, opts.onFirstFrame);
    // A copy the session owns: the digest may be a view of a buffer node:crypto allocated (the
    // native backend's sha256 avoids a copy per hash), which JSC then holds as an ArrayBuffer object
    // of its own beside the view, for the whole session (issue 13's heap census: 160 B per session).
    this.handshakeHash = new Uint8Array(keys.handshakeHash);
  }

  receive(chunk: Uint8Array, out: Output[]): void {
    this.reader.receive(chunk, out);
  }

  /**
   * Zeroes both transport keys in place (machine.ts dispose). The keys are this session's own (Split,
   * or v3's HKDF of K_shared), and no AEAD job may still hold them: the driver disposes only once the
   * worker pool has returned every batch it was given.
   */
  wipe(): void {
    this.writer.wipe();
    this.reader.wipe();
  }
}
