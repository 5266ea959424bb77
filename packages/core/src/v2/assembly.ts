/**
 * Reassembly of a v2 message from its "more to follow" chunks, with memory bounded by what is
 * retained rather than by what is counted (docs/PROTOCOL.md §v2, "Limits").
 *
 * A chunk body is a view into its opened frame, so keeping the view keeps the whole frame alive: an
 * empty chunk counted 0 bytes toward the message maximum yet pinned up to 64 KiB (7.9 MB of them once
 * raised a server's memory by 234 MB). So a body is kept in place only when it is large and makes up
 * at least half of the buffer it lives in; every other body is copied into a shared run buffer, and an
 * empty one retains nothing. What is retained (run buffers, and the whole backing buffer of each body
 * kept in place) is counted against the maximum, so the maximum bounds memory, not just message size.
 * The full frames of an honest large message are kept in place: their bodies are copied once, when the
 * message completes, as before.
 */
import { concat } from "../bytes.ts";
import { TooLargeError } from "../errors.ts";

/**
 * Bodies shorter than this are copied. Each kept body costs a view object and a list slot beside its
 * bytes; at 8 KiB or more that overhead is under 3 % of what it holds.
 */
export const KEEP_IN_PLACE_MIN = 8192;
/** Bodies this short are copied byte by byte: cheaper than making a view of each to copy from. */
const COPY_BY_LOOP = 32;
/** Copied bodies are gathered in buffers of this size (each counted whole while the message lasts). */
export const RUN_SIZE = 4 * KEEP_IN_PLACE_MIN;

/**
 * What a message of `maxMessageSize` bytes may retain. An honest writer's chunks fill their frames
 * (wire.ts), so its message retains its bytes, a few bytes of headers and buffer slack per 64 KiB frame
 * (1/64 leaves room for any backend), and for its first chunk either one run buffer or, kept in place,
 * at most the rest of that chunk's frame, which is under half a frame: RUN_SIZE covers either.
 */
export function retainedLimit(maxMessageSize: number): number {
  return maxMessageSize + Math.ceil(maxMessageSize / 64) + RUN_SIZE;
}

export class MessageAssembly {
  readonly maxMessageSize: number;
  private readonly maxRetained: number;
  /** Pieces of the message so far, in order: kept bodies and finished stretches of run buffers. */
  private pieces: Uint8Array[] = [];
  private run: Uint8Array | undefined;
  private runStart = 0;
  private runFill = 0;
  /** Message bytes so far. */
  private size = 0;
  /** Bytes of memory the pieces and the run keep alive. */
  private retained = 0;
  private begun = false;
  /** Messages begun so far (their first "more to follow" chunk arrived). */
  private begunCount = 0;

  constructor(maxMessageSize: number) {
    this.maxMessageSize = maxMessageSize;
    this.maxRetained = retainedLimit(maxMessageSize);
  }

  /** True while a message is partly assembled (one "more to follow" chunk has arrived). */
  get started(): boolean {
    return this.begun;
  }

  /**
   * Messages whose first "more to follow" chunk has arrived so far: with `started`, it tells the
   * driver's message deadline one unfinished message from the next (driver/deadline.ts).
   */
  get startedCount(): number {
    return this.begunCount;
  }

  /** Bytes of memory the message so far keeps alive. */
  get retainedBytes(): number {
    return this.retained;
  }

  /** Checks that `length` more bytes fit in the message; throws before anything is retained. */
  check(length: number): void {
    if (this.size + length > this.maxMessageSize) throw new TooLargeError(`message exceeds ${this.maxMessageSize} bytes`);
  }

  /** Adds the "more to follow" body at `frame[start, start + length)`. */
  add(frame: Uint8Array, start: number, length: number): void {
    this.check(length);
    if (!this.begun) {
      this.begun = true;
      this.begunCount++;
    }
    if (length === 0) return;
    const backing = frame.buffer.byteLength;
    if (length >= KEEP_IN_PLACE_MIN && 2 * length >= backing) {
      this.retain(backing);
      this.endRun();
      this.pieces.push(frame.subarray(start, start + length));
    } else if (length >= KEEP_IN_PLACE_MIN) {
      this.retain(length);
      this.endRun();
      this.pieces.push(frame.slice(start, start + length));
    } else {
      if (!this.run || this.run.length - this.runFill < length) {
        this.retain(RUN_SIZE);
        this.endRun();
        this.run = new Uint8Array(RUN_SIZE);
        this.runStart = this.runFill = 0;
      }
      const run = this.run;
      if (length <= COPY_BY_LOOP) {
        for (let i = 0; i < length; i++) run[this.runFill + i] = frame[start + i]!;
      } else {
        run.set(frame.subarray(start, start + length), this.runFill);
      }
      this.runFill += length;
    }
    this.size += length;
  }

  /**
   * Completes the message with its last body, `frame[start, start + length)`: that body alone (a
   * view, no copy) when nothing came before it.
   */
  finish(frame: Uint8Array, start: number, length: number): Uint8Array {
    this.check(length);
    const last = frame.subarray(start, start + length);
    if (!this.begun) return last;
    this.endRun();
    const message = this.pieces.length === 0 ? last : concat(...this.pieces, last);
    this.pieces = [];
    this.run = undefined;
    this.runStart = this.runFill = this.size = this.retained = 0;
    this.begun = false;
    return message;
  }

  private retain(bytes: number): void {
    if (this.retained + bytes > this.maxRetained) {
      throw new TooLargeError(`message retains more than ${this.maxRetained} bytes`);
    }
    this.retained += bytes;
  }

  /** Closes the stretch of the run buffer filled since the last piece, as a piece. */
  private endRun(): void {
    if (this.run && this.runFill > this.runStart) this.pieces.push(this.run.subarray(this.runStart, this.runFill));
    this.runStart = this.runFill;
  }
}
