/**
 * v2 transport framing over one Noise CipherState per direction.
 *
 * The writer packs the chunks of every message handed to one seal() call (the driver gathers the
 * messages of one tick) into as few frames as fit, so small messages share one AEAD operation and one
 * write. The reader accepts any packing, checks each frame's tag before it looks at a single chunk,
 * and bounds what it buffers: one frame of ciphertext and one message of plaintext.
 */
import { ByteQueue, readU16BE } from "../bytes.ts";
import { DecryptError, NstpError, ProtocolError } from "../errors.ts";
import type { Output } from "../events.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import { MessageAssembly } from "./assembly.ts";
import {
  CHUNK_CLOSE,
  CHUNK_HEADER_SIZE,
  CHUNK_LAST,
  CHUNK_MORE,
  CHUNK_PING,
  LENGTH_SIZE,
  MAX_FRAME_CIPHERTEXT,
  TAG_SIZE,
  MAX_FRAME_PLAINTEXT,
  MIN_FRAME_CIPHERTEXT,
  REKEY_INTERVAL,
} from "./wire.ts";

const EMPTY = new Uint8Array(0);

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

export class FrameWriter {
  private readonly cipher: CipherState;
  private readonly rekeyInterval: number;
  private closed = false;

  constructor(cipher: CipherState, rekeyInterval = REKEY_INTERVAL) {
    this.cipher = cipher;
    this.rekeyInterval = rekeyInterval;
  }

  /** Frames sealed so far in this direction. */
  get frames(): number {
    return this.cipher.n;
  }

  /**
   * Seals `messages` (then a close chunk if asked) into as few frames as fit, in one output buffer:
   * a first pass sizes the frames, a second seals each straight into place.
   */
  seal(messages: readonly Uint8Array[], close = false): Uint8Array {
    if (this.closed) throw new NstpError("ERR_CLOSED", "session closed");
    let total = 0;
    layout(messages, close, () => {}, (plaintext) => (total += LENGTH_SIZE + plaintext + TAG_SIZE));
    const out = new Uint8Array(total);
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
        const h = STAGING;
        h[staged] = type;
        h[staged + 1] = body.length >>> 8;
        h[staged + 2] = body.length & 0xff;
        staged += CHUNK_HEADER_SIZE;
        if (body.length >= DIRECT_BODY) {
          endRun();
          parts.push(body);
        } else {
          h.set(body, staged);
          staged += body.length;
        }
      },
      (plaintext) => {
        endRun();
        out[pos] = (plaintext + TAG_SIZE) >>> 8;
        out[pos + 1] = (plaintext + TAG_SIZE) & 0xff;
        pos += LENGTH_SIZE + this.cipher.encryptInto(parts, out, pos + LENGTH_SIZE);
        if (this.cipher.n % this.rekeyInterval === 0) this.cipher.rekey();
        parts = [];
        staged = runStart = 0;
      },
    );
    if (close) this.closed = true;
    return out;
  }

  /** One frame holding one empty ping chunk (docs/PROTOCOL.md §v2 "Ping"). */
  sealPing(): Uint8Array {
    if (this.closed) throw new NstpError("ERR_CLOSED", "session closed");
    const out = new Uint8Array(LENGTH_SIZE + PING_PLAINTEXT.length + TAG_SIZE);
    out[0] = (PING_PLAINTEXT.length + TAG_SIZE) >>> 8;
    out[1] = (PING_PLAINTEXT.length + TAG_SIZE) & 0xff;
    this.cipher.encryptInto([PING_PLAINTEXT], out, LENGTH_SIZE);
    if (this.cipher.n % this.rekeyInterval === 0) this.cipher.rekey();
    return out;
  }

  /**
   * The same frames as seal(), with their nonces taken in order now, for sealing elsewhere. Frames
   * prepared later get later nonces: the caller writes assembled batches in preparation order.
   */
  prepare(messages: readonly Uint8Array[], close = false): PreparedFrames {
    if (this.closed) throw new NstpError("ERR_CLOSED", "session closed");
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
        frame[fill] = type;
        frame[fill + 1] = body.length >>> 8;
        frame[fill + 2] = body.length & 0xff;
        frame.set(body, fill + CHUNK_HEADER_SIZE);
        fill += CHUNK_HEADER_SIZE + body.length;
      },
      () => {
        const { key, nonce } = this.cipher.reserve();
        if (this.cipher.n % this.rekeyInterval === 0) this.cipher.rekey();
        items.push({ key, nonce, data: frame });
        bytes += frame.length;
        frame = new Uint8Array(sizes[items.length] ?? 0);
        fill = 0;
      },
    );
    if (close) this.closed = true;
    return {
      items,
      bytes,
      assemble(sealed) {
        let total = 0;
        for (const c of sealed) total += LENGTH_SIZE + c.length;
        const out = new Uint8Array(total);
        let pos = 0;
        for (const c of sealed) {
          out[pos] = c.length >>> 8;
          out[pos + 1] = c.length & 0xff;
          out.set(c, pos + LENGTH_SIZE);
          pos += LENGTH_SIZE + c.length;
        }
        return out;
      },
    };
  }
}

/** One AEAD operation to run elsewhere (the worker pool): key, nonce and the bytes to seal or open. */
export interface AeadJob {
  key: Uint8Array;
  nonce: Uint8Array;
  data: Uint8Array;
}

/** Frames whose plaintexts are laid out and whose nonces are taken, waiting to be sealed. */
export interface PreparedFrames {
  items: AeadJob[];
  /** Plaintext bytes of all frames. */
  bytes: number;
  /** The wire bytes, from the sealed frames in the same order as `items`. */
  assemble(sealed: readonly Uint8Array[]): Uint8Array;
}

const CLOSE_BODY = new Uint8Array(0);
/** A ping chunk: type 3, empty body. */
const PING_PLAINTEXT = new Uint8Array([CHUNK_PING, 0, 0]);

/**
 * The packing rule, shared by both passes: chunks fill each frame greedily; a message continues in
 * the next frame when it does not fit; a chunk is never started without room for a byte of it.
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
    onChunk(CHUNK_CLOSE, CLOSE_BODY);
    fill += CHUNK_HEADER_SIZE;
  }
  if (fill > 0) onFrame(fill);
}

export class FrameReader {
  private readonly cipher: CipherState;
  private readonly rekeyInterval: number;
  readonly maxMessageSize: number;
  /** The partial frame at the end of the last read; never more than one frame. */
  private readonly partial = new ByteQueue(LENGTH_SIZE + MAX_FRAME_CIPHERTEXT);
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
    this.cipher = cipher;
    this.maxMessageSize = maxMessageSize;
    this.rekeyInterval = rekeyInterval;
    this.onFirstFrame = onFirstFrame;
    this.message = new MessageAssembly(maxMessageSize);
  }

  /** True while a frame or a multi-frame message is partly received. */
  get hasPartialInput(): boolean {
    return this.partial.length > 0 || this.message.started;
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
    this.forEachFrame(chunk, (ct) => this.openFrame(ct, out));
    this.partial.release();
  }

  /**
   * The frames completed by `chunk`, with their nonces taken in order, for opening elsewhere (the
   * worker pool); hand the results to accept() in the same order. Nothing is released until then.
   */
  split(chunk: Uint8Array): AeadJob[] {
    const jobs: AeadJob[] = [];
    this.forEachFrame(chunk, (ct) => {
      const { key, nonce } = this.cipher.reserve();
      if (this.cipher.n % this.rekeyInterval === 0) this.cipher.rekey();
      // A copy: the socket's buffer may be reused before the pool is done with it.
      jobs.push({ key, nonce, data: ct.slice() });
    });
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

  private forEachFrame(chunk: Uint8Array, onFrame: (ciphertext: Uint8Array) => void): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.closedByPeer) throw new ProtocolError("data after close");
      if (this.partial.length > 0 || chunk.length - off < LENGTH_SIZE) {
        off += this.fillPartial(chunk, off, onFrame);
        continue;
      }
      const len = readU16BE(chunk, off);
      checkFrameLength(len);
      if (chunk.length - off < LENGTH_SIZE + len) {
        off += this.fillPartial(chunk, off, onFrame);
        continue;
      }
      onFrame(chunk.subarray(off + LENGTH_SIZE, off + LENGTH_SIZE + len));
      off += LENGTH_SIZE + len;
    }
  }

  /** Copies what the partial frame still needs (and no more); returns the bytes taken. */
  private fillPartial(chunk: Uint8Array, off: number, onFrame: (ciphertext: Uint8Array) => void): number {
    const have = this.partial.length;
    if (have < LENGTH_SIZE) {
      const take = Math.min(LENGTH_SIZE - have, chunk.length - off);
      this.partial.push(chunk.subarray(off, off + take));
      // The length prefix is checked before any of the frame's body is buffered.
      if (this.partial.length === LENGTH_SIZE) checkFrameLength(readU16BE(this.partial.view(), 0));
      return take;
    }
    const total = LENGTH_SIZE + readU16BE(this.partial.view(), 0);
    const take = Math.min(total - have, chunk.length - off);
    this.partial.push(chunk.subarray(off, off + take));
    if (this.partial.length === total) {
      onFrame(this.partial.view().subarray(LENGTH_SIZE));
      this.partial.clear();
    }
    return take;
  }

  private openFrame(ciphertext: Uint8Array, out: Output[]): void {
    // Tag first: no chunk of a frame is looked at before the whole frame authenticated.
    const pt = this.cipher.decryptWithAd(EMPTY, ciphertext);
    if (this.cipher.n % this.rekeyInterval === 0) this.cipher.rekey();
    this.consumePlaintext(pt, out);
  }

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
      const type = pt[off]!;
      const len = readU16BE(pt, off + 1);
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

function checkFrameLength(len: number): void {
  if (len < MIN_FRAME_CIPHERTEXT) throw new ProtocolError(`frame of ${len} bytes is shorter than one chunk`);
}
