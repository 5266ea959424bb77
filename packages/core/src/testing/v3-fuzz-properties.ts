/**
 * The fuzzing properties of protocol v3, on the helpers of fuzz-properties.ts: random and mutated
 * streams into both v3 machines under any segmentation; only NstpErrors may escape, and an honest
 * stream must deliver exactly what was sent. A recorded session (fixed x and y) makes the honest
 * stream replayable into a fresh server. Run by v3/fuzz.test.ts.
 */
import { nativeBackend } from "../crypto/index.ts";
import { concat, utf8 } from "../bytes.ts";
import type { Output } from "../events.ts";
import { V3Client } from "../v3/client.ts";
import { V3Server } from "../v3/server.ts";
import { proverKeysFromPsk, verifierFromProverKeys } from "../v3/keys.ts";
import { parseV3Preamble } from "../v3/wire.ts";
import { type FuzzProperty, type Mutation, arbBytes, arbMessages, arbMutations, arbSizes, equal, feedServer, mutate, p, segments, typedOnly } from "./fuzz-properties.ts";

const crypto = nativeBackend;
const SALT = utf8("fuzz device salt");
const PSK = crypto.sha256(utf8("fuzz psk"));
const KEYS = proverKeysFromPsk(crypto, PSK, SALT, utf8("fuzz"));
const RECORD = verifierFromProverKeys(KEYS);
const X = 0x1f2e3d4c5b6a7988796a5b4c3d2e1f00112233445566778899aabbccddeeffn;
const Y = 0x0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210n;

const server = () => new V3Server({ crypto, deviceSalt: SALT, y: Y });

/** A recorded honest client: the flight (preamble, message 1), then message 3 and frames carrying `messages`. */
function v3Parts(messages: Uint8Array[]): { flight: Uint8Array; rest: Uint8Array } {
  const client = new V3Client({ crypto, username: "fuzz", deviceSalt: SALT, keys: KEYS, x: X });
  const s = server();
  const flight = sends(client.start());
  s.receive(flight);
  const message3 = sends(client.receive(sends(s.provideVerifier(RECORD))));
  return { flight, rest: concat(message3, client.seal(messages)) };
}

function sends(outs: Output[]): Uint8Array {
  return concat(...outs.flatMap((o) => (o.type === "send" ? [o.data] : [])));
}

/** Feeds a v3 server; need-key is answered with the PSK the keys came from (the server derives the record). */
const feed = (machine: V3Server, chunks: Uint8Array[]) => feedServer(machine, chunks, PSK);

export const V3_FUZZ_PROPERTIES: FuzzProperty[] = [
  p("v3 preamble parser: random bytes", [arbBytes], (b: Uint8Array) => {
    typedOnly(() => parseV3Preamble(b));
  }),
  p("v3 server: random streams after a preamble, any segmentation", [arbBytes, arbSizes], (b: Uint8Array, sizes: number[]) => {
    typedOnly(() => feed(server(), segments(concat(Uint8Array.of(0, 0x4e, 0x53, 0x54, 0x50, 3, 4, ...utf8("fuzz")), b), sizes)));
  }),
  p("v3 client: random server replies", [arbBytes, arbSizes], (b: Uint8Array, sizes: number[]) => {
    const c = new V3Client({ crypto, username: "fuzz", deviceSalt: SALT, keys: KEYS, x: X });
    c.start();
    typedOnly(() => segments(b, sizes).forEach((s) => c.receive(s)));
  }),
  p("v3 server: an honest stream delivers exactly what was sent, under any segmentation", [arbMessages, arbSizes], (ms: Uint8Array[], sizes: number[]) => {
    const { flight, rest } = v3Parts(ms);
    // Message 3 cannot share a read with the flight: the client needs message 2 to compute it.
    const got = feed(server(), [...segments(flight, sizes), ...segments(rest, sizes)]);
    if (got.length !== ms.length || got.some((g, i) => !equal(g, ms[i]!))) throw new Error("honest stream not delivered whole and in order");
  }),
  p("v3 server: a mutated honest stream fails typed and releases nothing forged", [arbMessages, arbMutations, arbSizes], (ms: Uint8Array[], mut: Mutation[], sizes: number[]) => {
    const { flight, rest } = v3Parts(ms);
    const released: Uint8Array[] = [];
    typedOnly(() => {
      const bad = mutate(concat(flight, rest), mut);
      // Replayed as the honest client would send it: the flight first, then everything else.
      const s = server();
      for (const part of [bad.subarray(0, flight.length), bad.subarray(flight.length)]) released.push(...feed(s, segments(part, sizes)));
    });
    if (released.some((r, i) => !ms[i] || !equal(r, ms[i]!))) throw new Error("a forged frame released plaintext");
  }),
];
