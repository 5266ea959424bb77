/**
 * v2 frame reader (docs/PROTOCOL.md §v2 "Transport"): accepts any packing, checks each frame's tag
 * before it looks at a single chunk, and bounds what it buffers: one frame of ciphertext and one
 * message of plaintext (assembly.ts). Frames are opened inline (receive) or, with the same nonces, in
 * the worker pool (split, then accept).
 */
import { ByteQueue } from "../bytes.ts";
import { DecryptError, ProtocolError } from "../errors.ts";
import type { Output } from "../events.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import { MessageAssembly } from "./assembly.ts";
import { type AeadJob, TransportCipher } from "./cipher.ts";
import {
  CHUNK_CLOSE,
  CHUNK_HEADER_SIZE,
  CHUNK_LAST,
  CHUNK_MORE,
  CHUNK_PING,
  FRAME_HEADER_SIZE,
  MAX_FRAME_CIPHERTEXT,
  MIN_FRAME_CIPHERTEXT,
  REKEY_INTERVAL,
  chunkBodyLength,
  chunkType,
  readFrameHeader,
} from "./wire.ts";

export class FrameReader {
  private readonly cipher: TransportCipher;
  readonly maxMessageSize: number;
  /** The partial frame at the end of the last read; never more than one frame. */
  private readonly partial = new ByteQueue(FRAME_HEADER_SIZE + MAX_FRAME_CIPHERTEXT);
  /** The message still incomplete: memory bounded by what it retains (assembly.ts). */
  private readonly message: MessageAssembly;
  private closedByPeer = false;
  /** Ping chunks received: the server answers a ping while established (docs/PROTOCOL.md §v2 "Ping"). */
  private pingChunks = 0;
  /**
   * Called once, when the first frame's tag has verified and before any of its chunks is looked at:
   * the server's key confirmation (docs/PROTOCOL.md §v2 "Key confirmation").
   */
  private onFirstFrame: ((out: Output[]) => void) | undefined;

  constructor(cipher: CipherState, maxMessageSize: number, rekeyInterval = REKEY_INTERVAL, onFirstFrame?: (out: Output[]) => void) {
    this.cipher = new TransportCipher(cipher, rekeyInterval);
    this.maxMessageSize = maxMessageSize;
    this.onFirstFrame = onFirstFrame;
    this.message = new MessageAssembly(maxMessageSize);
  }

  /** True while a frame or a multi-frame message is partly received. */
  get hasPartialInput(): boolean {
    return this.partial.length > 0 || this.message.started;
  }

  /** A message is partly assembled: its first "more to follow" chunk arrived, its last has not. */
  get hasPartialMessage(): boolean {
    return this.message.started;
  }

  /** Bytes of memory the unfinished message keeps alive (MessageAssembly.retainedBytes). */
  get partialMessageBytes(): number {
    return this.message.retainedBytes;
  }

  /** Messages begun in more than one chunk so far (MessageAssembly.startedCount). */
  get messagesStarted(): number {
    return this.message.startedCount;
  }

  get closed(): boolean {
    return this.closedByPeer;
  }

  /** Frames opened so far: the driver's partial-input deadline watches it advance. */
  get frames(): number {
    return this.cipher.n;
  }

  /** Ping chunks received so far. */
  get pings(): number {
    return this.pingChunks;
  }

  /** Reads frames from `chunk`; complete frames are decrypted straight from it, without a copy. */
  receive(chunk: Uint8Array, out: Output[]): void {
    // Tag first: no chunk of a frame is looked at before the whole frame authenticated.
    this.forEachFrame(chunk, (ct) => this.consumePlaintext(this.cipher.open(ct), out));
    this.partial.release();
  }

  /**
   * The frames completed by `chunk`, with their nonces taken in order, for opening elsewhere (the
   * worker pool); hand the results to accept() in the same order. Nothing is released until then.
   */
  split(chunk: Uint8Array): AeadJob[] {
    const jobs: AeadJob[] = [];
    // A copy: the socket's buffer may be reused before the pool is done with it.
    this.forEachFrame(chunk, (ct) => jobs.push(this.cipher.reserve(ct.slice())));
    this.partial.release();
    return jobs;
  }

  /** Opened frames from split(), in order; null (a failed tag) ends the session. */
  accept(plaintexts: readonly (Uint8Array | null)[], out: Output[]): void {
    for (const pt of plaintexts) {
      if (!pt) throw new DecryptError();
      this.consumePlaintext(pt, out);
    }
  }

  /** Zeroes the receiving key (Channel.wipe): every later frame throws. */
  wipe(): void {
    this.cipher.wipe();
  }

  private forEachFrame(chunk: Uint8Array, onFrame: (ciphertext: Uint8Array) => void): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.closedByPeer) throw new ProtocolError("data after close");
      if (this.partial.length > 0 || chunk.length - off < FRAME_HEADER_SIZE) {
        off += this.fillPartial(chunk, off, onFrame);
        continue;
      }
      const len = checkFrameLength(readFrameHeader(chunk, off));
      if (chunk.length - off < FRAME_HEADER_SIZE + len) {
        off += this.fillPartial(chunk, off, onFrame);
        continue;
      }
      onFrame(chunk.subarray(off + FRAME_HEADER_SIZE, off + FRAME_HEADER_SIZE + len));
      off += FRAME_HEADER_SIZE + len;
    }
  }

  /** Copies what the partial frame still needs (and no more); returns the bytes taken. */
  private fillPartial(chunk: Uint8Array, off: number, onFrame: (ciphertext: Uint8Array) => void): number {
    const have = this.partial.length;
    if (have < FRAME_HEADER_SIZE) {
      const take = Math.min(FRAME_HEADER_SIZE - have, chunk.length - off);
      this.partial.push(chunk.subarray(off, off + take));
      // The length prefix is checked before any of the frame's body is buffered.
      if (this.partial.length === FRAME_HEADER_SIZE) checkFrameLength(readFrameHeader(this.partial.view(), 0));
      return take;
    }
    const total = FRAME_HEADER_SIZE + readFrameHeader(this.partial.view(), 0);
    const take = Math.min(total - have, chunk.length - off);
    this.partial.push(chunk.subarray(off, off + take));
    if (this.partial.length === total) {
      onFrame(this.partial.view().subarray(FRAME_HEADER_SIZE));
      this.partial.clear();
    }
    return take;
  }

  /** The chunks of one authenticated frame's plaintext. */
  private consumePlaintext(pt: Uint8Array, out: Output[]): void {
    if (this.onFirstFrame) {
      const confirmed = this.onFirstFrame;
      this.onFirstFrame = undefined;
      confirmed(out);
    }
    let off = 0;
    while (off < pt.length) {
      if (this.closedByPeer) throw new ProtocolError("chunk after close");
      if (pt.length - off < CHUNK_HEADER_SIZE) throw new ProtocolError("truncated chunk header");
      const type = chunkType(pt, off);
      const len = chunkBodyLength(pt, off);
      const start = off + CHUNK_HEADER_SIZE;
      if (pt.length - start < len) throw new ProtocolError("chunk longer than its frame");
      off = start + len;
      if (type === CHUNK_CLOSE) {
        if (len !== 0 || this.message.started) throw new ProtocolError("close inside a message");
        this.closedByPeer = true;
        out.push({ type: "closed" });
        continue;
      }
      if (type === CHUNK_PING) {
        // Ignored wherever it falls, even between the chunks of a message; it carries nothing.
        if (len !== 0) throw new ProtocolError("ping chunk with a body");
        this.pingChunks++;
        continue;
      }
      if (type !== CHUNK_LAST && type !== CHUNK_MORE) throw new ProtocolError(`unknown chunk type ${type}`);
      // Bodies are passed as (frame, offset, length): a view per chunk would cost an allocation even
      // for the empty ones, which a frame holds 21,839 of.
      if (type === CHUNK_MORE) this.message.add(pt, start, len);
      else out.push({ type: "message", data: this.message.finish(pt, start, len) });
    }
  }
}

/** A frame too short to hold one chunk is refused from its header, before its body is buffered. */
function checkFrameLength(len: number): number {
  if (len < MIN_FRAME_CIPHERTEXT) throw new ProtocolError(`frame of ${len} bytes is shorter than one chunk`);
  return len;
}
