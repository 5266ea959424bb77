/**
 * The client's handshake phase as one straight-line function over the machine, as js-libp2p-noise's
 * performHandshake drives its pure protocol: start, write what the machine says, read until it says
 * established. The session (packages/client/src/session.ts) owns the wire, the deadline and what a
 * close means; it feeds the bytes it receives into a HandshakeReader until this returns.
 */
import { NstpError } from "../errors.ts";
import type { Output } from "../events.ts";
import type { ClientMachine } from "../machine.ts";

export interface HandshakeIo {
  write(bytes: Uint8Array): void;
  /** The next bytes from the server; rejects when the session fails (a close, the deadline). */
  read(): Promise<Uint8Array>;
}

/**
 * Runs the handshake to its end and returns what the machine produced after "established" in the
 * same step (messages the server sent with its last handshake bytes), for the session to apply in
 * order. Throws what the machine throws (a bad proof, a malformed message) or what read() rejects with.
 */
export async function clientHandshake(machine: ClientMachine, io: HandshakeIo): Promise<Output[]> {
  let outputs = machine.start();
  for (;;) {
    for (const [i, o] of outputs.entries()) {
      if (o.type === "established") return outputs.slice(i + 1);
      if (o.type === "send") io.write(o.data);
      // Nothing else comes before establishment: a machine authenticates before it delivers.
      else throw new NstpError("ERR_PROTOCOL", `${o.type} before the handshake completed`);
    }
    outputs = machine.receive(await io.read());
  }
}

/**
 * Push (the wire's data events) to pull (read()), for the handshake. At most what arrived while
 * nobody was reading is held: reading pauses (`pause(true)`) while anything waits here, so the
 * server cannot grow it, and resumes once it is taken.
 */
export class HandshakeReader {
  private readonly held: Uint8Array[] = [];
  private waiter: { resolve(chunk: Uint8Array): void; reject(e: Error): void } | undefined;
  private error: Error | undefined;
  private readonly pause: (paused: boolean) => void;

  constructor(pause: (paused: boolean) => void) {
    this.pause = pause;
  }

  push(chunk: Uint8Array): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve(chunk);
      return;
    }
    this.held.push(chunk);
    this.pause(true);
  }

  read(): Promise<Uint8Array> {
    if (this.error) return Promise.reject(this.error);
    const chunk = this.held.shift();
    if (chunk) {
      if (!this.held.length) this.pause(false);
      return Promise.resolve(chunk);
    }
    if (this.waiter) return Promise.reject(new NstpError("ERR_PROTOCOL", "two reads at once"));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** The session failed: the read under way (and any later one) rejects with `error`. */
  fail(error: Error): void {
    this.error ??= error;
    this.held.length = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(error);
  }

  /** The handshake is over: what arrived and was not read yet, in order, for the session's own path. */
  takeRest(): Uint8Array[] {
    return this.held.splice(0);
  }
}
