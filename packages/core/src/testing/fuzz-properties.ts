/**
 * Property-based tests (fast-check) of every parser and state machine: random and mutated byte
 * streams, cut into arbitrary segments. The only thing allowed to escape is an NstpError (the typed
 * protocol errors); an honest stream, however cut, must deliver exactly what was sent. Run by
 * fuzz.test.ts (a short pass) and scripts/fuzz.ts (a million cases or more); fast-check prints the
 * seed and path of every failure, so `--seed` replays it.
 */
import { type FuzzProperty, fc, p } from "@nstp/testkit";
import { nativeBackend } from "../crypto/index.ts";
import { NstpError } from "../errors.ts";
import type { Output } from "../events.ts";
import { ServerDispatch } from "../dispatch.ts";
import { LegacyClient, LegacyServer } from "../legacy/index.ts";
import { MAX_FALSE_BOUNDARIES, TRIAL_CREDIT_PER_BYTE } from "../legacy/server.ts";
import { MessageAssembly, retainedLimit } from "../v2/assembly.ts";
import { CHUNK_HEADER_SIZE, MAX_FRAME_PLAINTEXT } from "../v2/wire.ts";
import { parseClientHello } from "../legacy/wire.ts";
import { CipherState } from "../noise/cipher-state.ts";
import { FrameReader } from "../v2/reader.ts";
import { FrameWriter } from "../v2/writer.ts";
import { V2Client } from "../v2/client.ts";
import { V2Server } from "../v2/server.ts";
import { CHUNK_PING, parsePreamble } from "../v2/wire.ts";
import { concat } from "../bytes.ts";
import type { CryptoBackend } from "../crypto/backend.ts";

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
/** Where ping frames go among the messages (an index; past the end means after the last). */
const arbPings = fc.array(fc.nat({ max: 7 }), { maxLength: 4 });

/** Inserts a ping chunk (type 3, empty) at chunk boundary `at` of a frame plaintext made of `chunks`. */
function withPing(chunks: Uint8Array[], at: number): Uint8Array {
  const all = [...chunks];
  all.splice(at % (all.length + 1), 0, new Uint8Array([CHUNK_PING, 0, 0]));
  return concat(...all);
}

/** Feeds a server machine (any protocol) and answers need-key; returns the messages delivered. */
export function feedServer(machine: { receive(c: Uint8Array): Output[]; provideKey(k: Uint8Array): Output[] }, chunks: Uint8Array[], key = PSK): Uint8Array[] {
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
function v2Parts(messages: Uint8Array[], pings: number[] = []): { flight: Uint8Array; frames: Uint8Array } {
  const client = new V2Client({ crypto, username: "fuzz", psk: PSK });
  const server = new V2Server({ crypto, ephemeral: SERVER_E });
  const flight = (client.start()[0] as { data: Uint8Array }).data;
  const outs = [...server.receive(flight), ...server.provideKey(PSK)];
  client.receive((outs.find((o) => o.type === "send") as { data: Uint8Array }).data);
  // Ping frames (type 3) before the message at each index in `pings` (past the end: after the last).
  const parts: Uint8Array[] = [];
  for (let i = 0; i <= messages.length; i++) {
    for (const at of pings) if (Math.min(at, messages.length) === i) parts.push(client.ping());
    if (i < messages.length) parts.push(client.seal([messages[i]!]));
  }
  return { flight, frames: concat(...parts) };
}

function v2Stream(messages: Uint8Array[]): Uint8Array {
  const { flight, frames } = v2Parts(messages);
  const out = new Uint8Array(flight.length + frames.length);
  out.set(flight, 0);
  out.set(frames, flight.length);
  return out;
}

/** The native backend, counting AES-GCM opens and the bytes they cover (trial decryption). */
function countingOpens(): { backend: CryptoBackend; opens: { calls: number; bytes: number } } {
  const opens = { calls: 0, bytes: 0 };
  const backend: CryptoBackend = {
    ...crypto,
    aesGcmOpen: (key, nonce, sealed, aad) => (opens.calls++, (opens.bytes += sealed.length), crypto.aesGcmOpen(key, nonce, sealed, aad)),
  };
  return { backend, opens };
}

/** An established legacy pair (fixed nonces); `fed` counts the bytes the server has received. */
function legacyPair(backend: CryptoBackend): { server: LegacyServer; client: LegacyClient; sessionNonce: Uint8Array; fed: number } {
  const sessionNonce = crypto.sha256(new TextEncoder().encode("fuzz session nonce")).subarray(0, 8);
  const server = new LegacyServer({ crypto: backend, random: (n) => (n === 8 ? sessionNonce.slice() : crypto.randomBytes(n)) });
  const client = new LegacyClient({ crypto, username: "fuzz", psk: PSK });
  const hello = (client.start()[0] as { data: Uint8Array }).data;
  const sent = [...server.receive(hello), ...server.provideKey(PSK)];
  const proof = client.receive((sent.find((o) => o.type === "send") as { data: Uint8Array }).data).find((o) => o.type === "send") as { data: Uint8Array };
  const mine = server.receive(proof.data).find((o) => o.type === "send") as { data: Uint8Array };
  client.receive(mine.data);
  return { server, client, sessionNonce, fed: hello.length + proof.data.length };
}

export { type FuzzProperty, p };

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
  p("v2 server: an honest stream (pings anywhere) delivers exactly what was sent, under any segmentation", [arbMessages, arbPings, arbSizes], (ms: Uint8Array[], pings: number[], sizes: number[]) => {
    const { flight, frames } = v2Parts(ms, pings);
    const got = feedServer(new V2Server({ crypto, ephemeral: SERVER_E }), [...segments(flight, sizes), ...segments(frames, sizes)]);
    if (got.length !== ms.length || got.some((g, i) => !equal(g, ms[i]!))) throw new Error("honest stream not delivered whole and in order");
  }),
  p("v2 server: establishes only once a first frame authenticates, before any message; a replayed flight alone never does", [arbMessages, arbPings, arbSizes, arbMutations], (ms: Uint8Array[], pings: number[], sizes: number[], mut: Mutation[]) => {
    const { flight, frames } = v2Parts(ms, pings);
    const server = new V2Server({ crypto, ephemeral: SERVER_E });
    const seen: string[] = [];
    const record = (outs: Output[]) => {
      for (const o of outs) {
        seen.push(o.type);
        if (o.type === "need-key") record(server.provideKey(PSK));
      }
    };
    for (const s of segments(flight, sizes)) record(server.receive(s));
    if (seen.includes("established") || server.stateName !== "responseSent") throw new Error("established on message 1 alone");
    // A mutated first frame must not establish either; an intact one establishes before its messages.
    const first = frames.subarray(0, 2 + ((frames[0]! << 8) | frames[1]!));
    const bad = mutate(first, mut);
    const forgedServer = new V2Server({ crypto, ephemeral: SERVER_E });
    const forgedSeen: string[] = [];
    typedOnly(() => {
      for (const o of forgedServer.receive(flight)) if (o.type === "need-key") forgedServer.provideKey(PSK);
      for (const s of segments(bad, sizes)) for (const o of forgedServer.receive(s)) forgedSeen.push(o.type);
    });
    // Mutations can leave the frame itself intact (an insert of a copy of its last byte after it, a flip
    // undone by a second flip): the frame then rightly establishes, and what follows it is another frame.
    const frameIntact = bad.length >= first.length && equal(bad.subarray(0, first.length), first);
    if (forgedSeen.includes("established") && !frameIntact) throw new Error("a forged first frame established");
    for (const s of segments(frames, sizes)) record(server.receive(s));
    const at = seen.indexOf("established");
    if (at < 0 || seen.slice(0, at).includes("message")) throw new Error("messages released before key confirmation");
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
  p("legacy server: honest records, then junk with the session nonce planted anywhere, any segmentation: trial work within its credit", [
    fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 4 }), arbBytes, fc.array(fc.nat(), { maxLength: 40 }), arbSizes,
  ], (ms: Uint8Array[], junk: Uint8Array, plants: number[], sizes: number[]) => {
    const { backend, opens } = countingOpens();
    const pair = legacyPair(backend);
    const honest = ms.map((m) => pair.client.sealMessage(m));
    const bad = Array.from(junk);
    for (const at of plants) bad.splice(at % (bad.length + 1), 0, ...pair.sessionNonce);
    const stream = Uint8Array.from([...honest.flatMap((r) => [...r]), ...pair.sessionNonce, ...bad]);
    const callsBefore = opens.calls;
    const cut = segments(stream, sizes);
    const got: Uint8Array[] = [];
    typedOnly(() => {
      for (const c of cut) for (const o of pair.server.receive(c)) if (o.type === "message") got.push(o.data);
    });
    if (got.some((g, i) => !ms[i] || !equal(g, ms[i]!))) throw new Error("released something that was not sent");
    if (opens.bytes > TRIAL_CREDIT_PER_BYTE * (pair.fed + stream.length)) throw new Error(`${opens.bytes} bytes of trial decryption for ${stream.length} received`);
    const calls = opens.calls - callsBefore;
    if (calls > ms.length + MAX_FALSE_BOUNDARIES + 2 * cut.length) throw new Error(`${calls} trial decryptions for ${cut.length} arrivals`);
  }),
  p("v2 message assembly: any cut into chunks (empty ones too), any frame around them: the message whole, retained memory within the bound", [
    fc.uint8Array({ maxLength: 40_000 }), fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 30 }), fc.array(fc.nat(), { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 40_000 }),
  ], (msg: Uint8Array, cuts: number[], pads: number[], max: number) => {
    const a = new MessageAssembly(max);
    const inFrame = (body: Uint8Array, i: number): [Uint8Array, number, number] => {
      const pad = pads[i % pads.length]! % (MAX_FRAME_PLAINTEXT - CHUNK_HEADER_SIZE - body.length + 1);
      const frame = new Uint8Array(body.length + pad + CHUNK_HEADER_SIZE);
      frame.set(body, CHUNK_HEADER_SIZE);
      return [frame, CHUNK_HEADER_SIZE, body.length];
    };
    let off = 0;
    let out: Uint8Array | undefined;
    const threw = typedOnly(() => {
      for (let i = 0; ; i++) {
        // The cuts as given, then cycled with at least a byte each so that the message ends.
        const n = Math.min(i < cuts.length ? cuts[i]! : Math.max(1, cuts[i % cuts.length]!), msg.length - off);
        const body = inFrame(msg.subarray(off, off + n), i);
        off += n;
        if (off === msg.length && i >= cuts.length - 1) {
          out = a.finish(...body);
          return;
        }
        a.add(...body);
        if (a.retainedBytes > retainedLimit(max)) throw new Error(`retained ${a.retainedBytes} over ${retainedLimit(max)}`);
      }
    });
    // Over the maximum is always refused; within it, a packing may still be refused for what it would
    // retain (never an honest writer's: the frame reader property covers those).
    if (msg.length > max && !threw) throw new Error(`message of ${msg.length} bytes accepted over a maximum of ${max}`);
    if (!threw && !equal(out!, msg)) throw new Error("message not assembled whole");
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
  p("v2 frame reader: ping chunks anywhere among the chunks of a frame are ignored", [arbMessages, fc.nat(), arbSizes], (ms: Uint8Array[], at: number, sizes: number[]) => {
    const small = ms.map((m) => m.subarray(0, 1000));
    const chunks = small.map((m) => concat(new Uint8Array([0, m.length >>> 8, m.length & 0xff]), m));
    const ct = new CipherState(crypto, FRAME_KEY).encryptWithAd(new Uint8Array(0), withPing(chunks, at));
    const reader = new FrameReader(new CipherState(crypto, FRAME_KEY), 1 << 20);
    const got: Uint8Array[] = [];
    for (const s of segments(concat(new Uint8Array([ct.length >>> 8, ct.length & 0xff]), ct), sizes)) {
      const out: Output[] = [];
      reader.receive(s, out);
      for (const o of out) if (o.type === "message") got.push(o.data);
    }
    if (got.length !== small.length || got.some((g, i) => !equal(g, small[i]!))) throw new Error("a ping changed what was delivered");
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
