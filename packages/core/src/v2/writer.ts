/**
 * v2 frame writer (docs/PROTOCOL.md §v2 "Transport"): packs the chunks of every message handed to one
 * seal() call (the driver gathers the messages of one tick) into as few frames as fit, so small
 * messages share one AEAD operation and one write. Sealed inline (seal) or, with the same layout and
 * the same nonces, in the worker pool (prepare).
 */
import { allocOverwritten, overwritten } from "../bytes.ts";
import { NstpError } from "../errors.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import { type AeadJob, TransportCipher } from "./cipher.ts";
import {
  CHUNK_CLOSE,
  CHUNK_HEADER_SIZE,
  CHUNK_LAST,
  CHUNK_MORE,
  CHUNK_PING,
  FRAME_HEADER_SIZE,
  MAX_CHUNK_BODY,
  MAX_FRAME_PLAINTEXT,
  REKEY_INTERVAL,
  TAG_SIZE,
  writeChunkHeader,
  writeFrameHeader,
} from "./wire.ts";

/**
 * Chunk bodies at least this long are sealed from where they lie; shorter ones are copied together
 * with the chunk headers. Each separate part costs a cipher update() call, which for 1 KiB bodies cost
 * more than the copy (bench --only echo, 1 KiB: 220 MB/s with 1 KiB parts, see README for after).
 */
const DIRECT_BODY = 8192;

/**
 * Where chunk headers and short bodies of the frame being sealed are gathered: one per thread, not
 * per writer. seal() fills it and encrypts from it before returning, synchronously, so no two seals
 * ever share it; a 64 KiB staging buffer per session was most of an idle v2 session's memory (the
 * fleet bench, README "Fleet").
 */
const STAGING = new Uint8Array(MAX_FRAME_PLAINTEXT);

/**
 * Batches sealed for a wire that copies writes (SealOptions.transient) and at most this long are
 * sealed into one per-thread buffer, reused by every such seal: fresh memory per batch cost its page
 * faults on every write (issue 15's profiles: zero-fill or first touch of each batch's output). 16
 * full frames cover a batch up to the drivers' default write high-water mark (1 MiB), at which they
 * seal what they have gathered; longer batches get fresh memory.
 */
export const TRANSIENT_OUT_MAX = 16 * (FRAME_HEADER_SIZE + MAX_FRAME_PLAINTEXT + TAG_SIZE);
/** Grown by the transient seals on this thread, up to TRANSIENT_OUT_MAX; never shrunk. */
let transientOut: Uint8Array | undefined;

/** The output of a seal of `total` bytes. */
function output(total: number, transient: boolean): Uint8Array {
  if (!transient || total > TRANSIENT_OUT_MAX) return allocOverwritten(total);
  if (!transientOut || transientOut.length < total) {
    transientOut = allocOverwritten(Math.min(TRANSIENT_OUT_MAX, Math.max(total, 2 * (transientOut?.length ?? 0))));
  }
  return transientOut.subarray(0, total);
}

const NO_BODY = new Uint8Array(0);
/** A frame's plaintext of one ping chunk (type 3, empty body). */
const PING_PLAINTEXT = new Uint8Array(CHUNK_HEADER_SIZE);
writeChunkHeader(PING_PLAINTEXT, 0, CHUNK_PING, 0);

/** Frames whose plaintexts are laid out and whose nonces are taken, waiting to be sealed. */
export interface PreparedFrames {
  items: AeadJob[];
  /** Plaintext bytes of all frames. */
  bytes: number;
  /** The wire bytes, from the sealed frames in the same order as `items`. */
  assemble(sealed: readonly Uint8Array[]): Uint8Array;
}

/** The wire size of a frame carrying `plaintext` bytes. */
function frameSize(plaintext: number): number {
  return FRAME_HEADER_SIZE + plaintext + TAG_SIZE;
}

export class FrameWriter {
  private readonly cipher: TransportCipher;
  private closed = false;

  constructor(cipher: CipherState, rekeyInterval = REKEY_INTERVAL) {
    this.cipher = new TransportCipher(cipher, rekeyInterval);
  }

  /** Frames sealed so far in this direction. */
  get frames(): number {
    return this.cipher.n;
  }

  /**
   * Seals `messages` (then a close chunk if asked) into as few frames as fit, in one output buffer:
   * a first pass sizes the frames, a second seals each straight into place. `transient`: the caller
   * is done with the bytes before the next seal on this thread (SealOptions.transient), so they may
   * live in the thread's reused output buffer.
   */
  seal(messages: readonly Uint8Array[], close = false, transient = false): Uint8Array {
    this.checkOpen(close);
    let total = 0;
    layout(messages, close, () => {}, (plaintext) => (total += frameSize(plaintext)));
    // Every byte is written below: frame headers, then each frame's ciphertext and tag.
    const out = output(total, transient);
    let pos = 0;
    let parts: Uint8Array[] = [];
    let staged = 0;
    let runStart = 0;
    const endRun = () => {
      if (staged > runStart) parts.push(STAGING.subarray(runStart, staged));
      runStart = staged;
    };
    layout(
      messages,
      close,
      (type, body) => {
        staged = writeChunkHeader(STAGING, staged, type, body.length);
        if (body.length >= DIRECT_BODY) {
          endRun();
          parts.push(body);
        } else {
          STAGING.set(body, staged);
          staged += body.length;
        }
      },
      (plaintext) => {
        endRun();
        pos = writeFrameHeader(out, pos, plaintext + TAG_SIZE);
        pos += this.cipher.sealInto(parts, out, pos);
        parts = [];
        staged = runStart = 0;
      },
    );
    // Uninitialised bytes must never leave: the layout and the sealing agree, or the session fails.
    return overwritten(out, pos);
  }

  /** One frame holding one empty ping chunk (docs/PROTOCOL.md §v2 "Ping"). */
  sealPing(): Uint8Array {
    this.checkOpen(false);
    const out = new Uint8Array(frameSize(PING_PLAINTEXT.length));
    this.cipher.sealInto([PING_PLAINTEXT], out, writeFrameHeader(out, 0, PING_PLAINTEXT.length + TAG_SIZE));
    return out;
  }

  /**
   * The same frames as seal(), with their nonces taken in order now, for sealing elsewhere. Frames
   * prepared later get later nonces: the caller writes assembled batches in preparation order.
   */
  prepare(messages: readonly Uint8Array[], close = false): PreparedFrames {
    this.checkOpen(close);
    const sizes: number[] = [];
    layout(messages, close, () => {}, (plaintext) => sizes.push(plaintext));
    const items: AeadJob[] = [];
    let frame = new Uint8Array(sizes[0] ?? 0);
    let fill = 0;
    let bytes = 0;
    layout(
      messages,
      close,
      (type, body) => {
        fill = writeChunkHeader(frame, fill, type, body.length);
        frame.set(body, fill);
        fill += body.length;
      },
      () => {
        items.push(this.cipher.reserve(frame));
        bytes += frame.length;
        frame = new Uint8Array(sizes[items.length] ?? 0);
        fill = 0;
      },
    );
    return { items, bytes, assemble };
  }

  /** Zeroes the sending key (Channel.wipe): every later seal, ping or prepare throws. */
  wipe(): void {
    this.cipher.wipe();
  }

  /** Refuses after a close; a seal that carries the close is the last one. */
  private checkOpen(closing: boolean): void {
    if (this.closed) throw new NstpError("ERR_CLOSED", "session closed");
    if (closing) this.closed = true;
  }
}

/** The wire bytes of frames sealed elsewhere, each behind its frame header, in order. */
function assemble(sealed: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of sealed) total += FRAME_HEADER_SIZE + c.length;
  const out = allocOverwritten(total);
  let pos = 0;
  for (const c of sealed) {
    pos = writeFrameHeader(out, pos, c.length);
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

/**
 * The packing rule, shared by both passes of both paths: chunks fill each frame greedily, except that
 * a message that fits a frame of its own but not the room left in this one starts the next frame (the
 * wire allows any packing: docs/PROTOCOL.md §v2 "Transport"), so that the reader hands it out as a
 * view of its opened frame instead of reassembling (copying) it from two (assembly.ts); a larger
 * message continues in the next frame when it does not fit; a chunk is never started without room
 * for a byte of it.
 */
function layout(
  messages: readonly Uint8Array[],
  close: boolean,
  onChunk: (type: number, body: Uint8Array) => void,
  onFrame: (plaintextLength: number) => void,
): void {
  let fill = 0;
  for (const m of messages) {
    let off = 0;
    if (fill > 0 && m.length <= MAX_CHUNK_BODY && fill + CHUNK_HEADER_SIZE + m.length > MAX_FRAME_PLAINTEXT) {
      onFrame(fill);
      fill = 0;
    }
    do {
      let room = MAX_FRAME_PLAINTEXT - fill - CHUNK_HEADER_SIZE;
      if (room < 0 || (room === 0 && off < m.length)) {
        onFrame(fill);
        fill = 0;
        room = MAX_FRAME_PLAINTEXT - CHUNK_HEADER_SIZE;
      }
      const take = Math.min(m.length - off, room);
      onChunk(off + take === m.length ? CHUNK_LAST : CHUNK_MORE, take === m.length ? m : m.subarray(off, off + take));
      fill += CHUNK_HEADER_SIZE + take;
      off += take;
    } while (off < m.length);
  }
  if (close) {
    if (MAX_FRAME_PLAINTEXT - fill < CHUNK_HEADER_SIZE) {
      onFrame(fill);
      fill = 0;
    }
    onChunk(CHUNK_CLOSE, NO_BODY);
    fill += CHUNK_HEADER_SIZE;
  }
  if (fill > 0) onFrame(fill);
}
