/**
 * Property-based tests (fast-check) of every parser and state machine: random and mutated byte
 * streams, cut into arbitrary segments. The only thing allowed to escape is an NstpError (the typed
 * protocol errors); an honest stream, however cut, must deliver exactly what was sent. Run by
 * fuzz.test.ts (a short pass) and scripts/fuzz.ts (a million cases or more); fast-check prints the
 * seed and path of every failure, so `--seed` replays it.
 */
import fc from "fast-check";
import { nativeBackend } from "../crypto/index.ts";
import { NstpError } from "../errors.ts";
import type { Output } from "../events.ts";
import { ServerDispatch } from "../dispatch.ts";
import { LegacyClient, LegacyServer } from "../legacy/index.ts";
import { parseClientHello } from "../legacy/wire.ts";
import { CipherState } from "../noise/cipher-state.ts";
import { FrameReader, FrameWriter } from "../v2/framing.ts";
import { V2Client } from "../v2/client.ts";
import { V2Server } from "../v2/server.ts";
import { parsePreamble } from "../v2/wire.ts";

const crypto = nativeBackend;
const PSK = crypto.sha256(new TextEncoder().encode("fuzz psk"));
const FRAME_KEY = crypto.sha256(new TextEncoder().encode("fuzz frame key"));

/** Runs `f`; anything thrown that is not an NstpError fails the property. Returns whether it threw. */
export function typedOnly(f: () => void): boolean {
  try {
    f();
    return false;
  } catch (e) {
    if (e instanceof NstpError) return true;
    throw new Error(`untyped error escaped: ${(e as Error)?.stack ?? e}`);
  }
}

/** Cuts `bytes` into segments of the given sizes (cycled), the way TCP may deliver them. */
export function segments(bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = sizes.length ? sizes[i % sizes.length]! : bytes.length;
    out.push(bytes.subarray(off, off + n));
    off += n;
  }
  return out;
}

export type Mutation = { kind: "flip" | "insert" | "delete" | "truncate"; at: number; byte: number };

export function mutate(bytes: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Array.from(bytes);
  for (const m of ms) {
    if (!b.length) break;
    const at = m.at % b.length;
    if (m.kind === "flip") b[at] = b[at]! ^ (1 << (m.byte % 8));
    else if (m.kind === "insert") b.splice(at, 0, m.byte);
    else if (m.kind === "delete") b.splice(at, 1);
    else b = b.slice(0, at);
  }
  return Uint8Array.from(b);
}

export const arbSizes = fc.array(fc.integer({ min: 1, max: 97 }), { maxLength: 8 });
export const arbBytes = fc.uint8Array({ maxLength: 600 });
export const arbMutations = fc.array(
  fc.record({ kind: fc.constantFrom("flip", "insert", "delete", "truncate"), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  { minLength: 1, maxLength: 4 },
) as fc.Arbitrary<Mutation[]>;
export const arbMessages = fc.array(fc.uint8Array({ maxLength: 3000 }), { minLength: 1, maxLength: 6 });

/** Feeds a server machine (either protocol) and answers need-key; returns the messages delivered. */
function feedServer(machine: { receive(c: Uint8Array): Output[]; provideKey(k: Uint8Array): Output[] }, chunks: Uint8Array[], key = PSK): Uint8Array[] {
  const got: Uint8Array[] = [];
  const apply = (outs: Output[]) => {
    for (const o of outs) {
      if (o.type === "need-key") apply(machine.provideKey(key));
      else if (o.type === "message") got.push(o.data);
    }
  };
  for (const c of chunks) apply(machine.receive(c));
  return got;
}

/** The server's ephemeral key, fixed so that a fresh server machine can replay a recorded session. */
const SERVER_E = crypto.sha256(new TextEncoder().encode("fuzz server ephemeral"));

/**
 * A recorded honest v2 client stream: the flight (preamble, message 1), then frames carrying
 * `messages`. An honest client sends the frames only after message 2, so they never share a read
 * with the flight.
 */
function v2Parts(messages: Uint8Array[]): { flight: Uint8Array; frames: Uint8Array } {
  const client = new V2Client({ crypto, username: "fuzz", psk: PSK });
  const server = new V2Server({ crypto, ephemeral: SERVER_E });
  const flight = (client.start()[0] as { data: Uint8Array }).data;
  const outs = [...server.receive(flight), ...server.provideKey(PSK)];
  client.receive((outs.find((o) => o.type === "send") as { data: Uint8Array }).data);
  return { flight, frames: client.seal(messages) };
}

function v2Stream(messages: Uint8Array[]): Uint8Array {
  const { flight, frames } = v2Parts(messages);
  const out = new Uint8Array(flight.length + frames.length);
  out.set(flight, 0);
  out.set(frames, flight.length);
  return out;
}

export interface FuzzProperty {
  name: string;
  property: fc.IProperty<never>;
}

// Each property is typed loosely for the table; fast-check checks its own arguments.
export const p = <T extends unknown[]>(name: string, arbs: { [K in keyof T]: fc.Arbitrary<T[K]> }, f: (...args: T) => void): FuzzProperty => ({
  name,
  property: fc.property(...(arbs as unknown as [fc.Arbitrary<unknown>]), f as (...a: unknown[]) => void) as unknown as fc.IProperty<never>,
});

export const FUZZ_PROPERTIES: FuzzProperty[] = [
  p("v2 preamble parser: random bytes", [arbBytes], (b: Uint8Array) => {
    typedOnly(() => parsePreamble(b));
  }),
  p("legacy hello parser: random bytes", [arbBytes], (b: Uint8Array) => {
    typedOnly(() => parseClientHello(b));
  }),
  p("server dispatch: random streams, any segmentation", [arbBytes, arbSizes], (b: Uint8Array, sizes: number[]) => {
    typedOnly(() => feedServer(new ServerDispatch({ crypto }), segments(b, sizes)));
  }),
  p("v2 server: an honest stream delivers exactly what was sent, under any segmentation", [arbMessages, arbSizes], (ms: Uint8Array[], sizes: number[]) => {
    const { flight, frames } = v2Parts(ms);
    const got = feedServer(new V2Server({ crypto, ephemeral: SERVER_E }), [...segments(flight, sizes), ...segments(frames, sizes)]);
    if (got.length !== ms.length || got.some((g, i) => !equal(g, ms[i]!))) throw new Error("honest stream not delivered whole and in order");
  }),
  p("v2 server: a mutated honest stream fails typed and releases nothing forged", [arbMessages, arbMutations, arbSizes], (ms: Uint8Array[], mut: Mutation[], sizes: number[]) => {
    const released: Uint8Array[] = [];
    const server = new V2Server({ crypto, ephemeral: SERVER_E });
    typedOnly(() => {
      for (const s of segments(mutate(v2Stream(ms), mut), sizes)) {
        for (const o of server.receive(s)) {
          if (o.type === "need-key") for (const x of server.provideKey(PSK)) if (x.type === "message") released.push(x.data);
          if (o.type === "message") released.push(o.data);
        }
      }
    });
    if (released.some((r, i) => !ms[i] || !equal(r, ms[i]!))) throw new Error("a forged frame released plaintext");
  }),
  p("legacy server: random streams after a hello, any segmentation", [arbBytes, arbSizes], (b: Uint8Array, sizes: number[]) => {
    const hello = Uint8Array.from([4, 0x66, 0x75, 0x7a, 0x7a, ...new Uint8Array(16)]);
    const stream = new Uint8Array(hello.length + b.length);
    stream.set(hello);
    stream.set(b, hello.length);
    typedOnly(() => feedServer(new LegacyServer({ crypto }), segments(stream, sizes)));
  }),
  p("v2 client: random server replies", [arbBytes, arbSizes], (b: Uint8Array, sizes: number[]) => {
    const c = new V2Client({ crypto, username: "fuzz", psk: PSK });
    c.start();
    typedOnly(() => segments(b, sizes).forEach((s) => c.receive(s)));
  }),
  p("legacy client: random server replies", [arbBytes, arbSizes], (b: Uint8Array, sizes: number[]) => {
    const c = new LegacyClient({ crypto, username: "fuzz", psk: PSK });
    c.start();
    typedOnly(() => segments(b, sizes).forEach((s) => c.receive(s)));
  }),
  p("v2 frame reader: honest frames arrive whole under any segmentation; mutated ones fail typed", [arbMessages, arbMutations, arbSizes], (ms: Uint8Array[], mut: Mutation[], sizes: number[]) => {
    const wire = new FrameWriter(new CipherState(crypto, FRAME_KEY)).seal(ms);
    const honest = new FrameReader(new CipherState(crypto, FRAME_KEY), 1 << 20);
    const got: Uint8Array[] = [];
    for (const s of segments(wire, sizes)) {
      const out: Output[] = [];
      honest.receive(s, out);
      for (const o of out) if (o.type === "message") got.push(o.data);
    }
    if (got.length !== ms.length || got.some((g, i) => !equal(g, ms[i]!))) throw new Error("honest frames did not arrive whole and in order");
    const forged = new FrameReader(new CipherState(crypto, FRAME_KEY), 1 << 20);
    const bad = mutate(wire, mut);
    const released: Uint8Array[] = [];
    typedOnly(() => {
      for (const s of segments(bad, sizes)) {
        const out: Output[] = [];
        forged.receive(s, out);
        for (const o of out) if (o.type === "message") released.push(o.data);
      }
    });
    // Whatever was released must be a prefix of what was sent (a tag protects every frame).
    if (released.some((r, i) => !ms[i] || !equal(r, ms[i]!))) throw new Error("a forged frame released plaintext");
  }),
];

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export { fc };
