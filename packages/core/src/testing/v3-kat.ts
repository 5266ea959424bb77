/**
 * Builds the published v3 known-answer vectors (docs/vectors/nstp-v3-kat.json): fixed password,
 * salt, username and scalars run through the real V3Client and V3Server machines, with every
 * intermediate value of docs/PROTOCOL.md §v3 recomputed from the primitives beside them and checked
 * equal. `scripts/v3-kat.ts` writes the file; `v3/kat.test.ts` rebuilds it on both backends and
 * compares it byte for byte.
 */
import type { CryptoBackend } from "../crypto/backend.ts";
import { hkdfSha256 } from "../crypto/hkdf.ts";
import { concat, fromHex, toHex, utf8 } from "../bytes.ts";
import type { Output } from "../events.ts";
import { PBKDF2_ITERATIONS, derivePsk } from "../keys/password.ts";
import { V3Client } from "../v3/client.ts";
import { V3Server } from "../v3/server.ts";
import { proverKeysFromPsk, verifierFromProverKeys } from "../v3/keys.ts";
import { M_BYTES, N_BYTES, confirmP, confirmV, keySchedule, lengthPrefixed, proverFinish, scalarFromBytes, transcript } from "../v3/spake2plus.ts";
import { preambleUsername, spakeContext } from "../v3/wire.ts";

export const KAT_INPUTS = {
  password: "correct horse battery staple",
  username: "device-0042",
  /** 16 bytes, as `bun run users` generates; not the reference's demo salt. */
  deviceSalt: "6e737470207633206b61742073616c74",
  /** Fixed prover and verifier scalars (below n); a real peer draws them fresh, uniform in [1, n-1]. */
  x: "8b0f3c1e5a7d9e2f4c6b8a0d1e3f5a7c9b2d4e6f8a1c3e5b7d9f0a2c4e6b8d0f",
  y: "2a4c6e8f0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a1c3e5f7b9d0a2c4e6f8b1d3f",
  clientMessages: ["Hello server! Message #0", "and a second message in the same frame"],
  serverMessages: ["Hello client!"],
} as const;

const sends = (outs: Output[]) => concat(...outs.flatMap((o) => (o.type === "send" ? [o.data] : [])));
const hex = (b: Uint8Array) => toHex(b);

function check(name: string, a: Uint8Array, b: Uint8Array): void {
  if (hex(a) !== hex(b)) throw new Error(`KAT: the machines' ${name} differs from the recomputed one`);
}

export interface V3Kat {
  description: string;
  inputs: Record<string, unknown>;
  keys: Record<string, string>;
  handshake: Record<string, string>;
  transport: Record<string, unknown>;
  layout: Record<string, { offset: number; size: number; field: string }[]>;
  fields: Record<string, string>;
}

export async function buildV3Kat(crypto: CryptoBackend): Promise<V3Kat> {
  const k = KAT_INPUTS;
  const deviceSalt = fromHex(k.deviceSalt);
  const usernameBytes = utf8(k.username);
  const psk = await derivePsk(crypto, { password: k.password, username: k.username, deviceSalt });
  const w0w1Info = concat(utf8("nstp/3 w0w1"), lengthPrefixed([deviceSalt, usernameBytes]));
  const w0w1Okm = hkdfSha256(crypto, new Uint8Array(0), psk, w0w1Info, 80);
  const prover = proverKeysFromPsk(crypto, psk, deviceSalt, usernameBytes);
  const verifier = verifierFromProverKeys(prover);
  const x = scalarFromBytes(fromHex(k.x));
  const y = scalarFromBytes(fromHex(k.y));

  // The machines, with the scalars injected.
  const client = new V3Client({ crypto, username: k.username, deviceSalt, keys: prover, x });
  const server = new V3Server({ crypto, deviceSalt, y });
  const flight1 = sends(client.start());
  server.receive(flight1);
  const message2 = sends(server.provideVerifier(verifier));
  const message3 = sends(client.receive(message2));
  const clientFrame = client.seal(k.clientMessages.map(utf8));
  const delivered = server.receive(concat(message3, clientFrame)).flatMap((o) => (o.type === "message" ? [new TextDecoder().decode(o.data)] : []));
  if (delivered.join("\n") !== k.clientMessages.join("\n")) throw new Error("KAT: the server did not deliver the client's messages");
  const serverFrame = server.seal(k.serverMessages.map(utf8));
  const replies = client.receive(serverFrame).flatMap((o) => (o.type === "message" ? [new TextDecoder().decode(o.data)] : []));
  if (replies.join("\n") !== k.serverMessages.join("\n")) throw new Error("KAT: the client did not deliver the server's messages");

  // The same handshake from the primitives.
  const preamble = flight1.subarray(0, 7 + usernameBytes.length);
  const message1 = flight1.subarray(preamble.length);
  const shareP = message1.subarray(2);
  const shareV = message2.subarray(2, 67);
  const curve = proverFinish(scalarFromBytes(prover.w0), scalarFromBytes(prover.w1), x, shareV);
  const context = spakeContext(preamble);
  const tt = transcript({ context, idProver: preambleUsername(preamble), idVerifier: deviceSalt, shareP, shareV, Z: curve.Z, V: curve.V, w0: prover.w0 });
  const ks = keySchedule(crypto, tt);
  const cP = confirmP(crypto, ks, shareV);
  const cV = confirmV(crypto, ks, shareP);
  check("confirmV", cV, message2.subarray(67));
  check("confirmP", cP, message3.subarray(2));
  const transportOkm = hkdfSha256(crypto, new Uint8Array(0), ks.K_shared, utf8("nstp/3 transport"), 64);

  const describeFrame = (name: string) => `${name}: u16 ciphertext length, then AES-256-GCM(key, nonce = 00000000 || counter 0 as 8 bytes big-endian, empty AAD) of the chunks, 16-byte tag last`;
  return {
    description:
      "nstp protocol v3 known-answer vectors (SPAKE2+ RFC 9383, P256-SHA256-HKDF-SHA256-HMAC-SHA256, then v2's transport). " +
      "Every value is lowercase hex unless it is a string or a number. docs/PROTOCOL.md §v3 defines each step; `fields` explains every entry and `layout` every byte of the messages (size -1: to the end of the unit). " +
      "Generated by scripts/v3-kat.ts; packages/core/src/v3/kat.test.ts recomputes it on both crypto backends.",
    inputs: {
      password: k.password,
      username: k.username,
      usernameHex: hex(usernameBytes),
      deviceSalt: k.deviceSalt,
      pbkdf2Iterations: PBKDF2_ITERATIONS,
      x: k.x,
      y: k.y,
      clientMessages: k.clientMessages,
      serverMessages: k.serverMessages,
    },
    keys: {
      pbkdf2Salt: hex(concat(deviceSalt, usernameBytes)),
      psk: hex(psk),
      w0w1Info: hex(w0w1Info),
      w0w1Okm: hex(w0w1Okm),
      w0: hex(prover.w0),
      w1: hex(prover.w1),
      L: hex(verifier.L),
    },
    handshake: {
      preamble: hex(preamble),
      message1: hex(message1),
      clientFirstFlight: hex(flight1),
      M: hex(M_BYTES),
      N: hex(N_BYTES),
      context: hex(context),
      idProver: hex(preambleUsername(preamble)),
      idVerifier: hex(deviceSalt),
      shareP: hex(shareP),
      shareV: hex(shareV),
      Z: hex(curve.Z),
      V: hex(curve.V),
      TT: hex(tt),
      K_main: hex(ks.K_main),
      K_confirmP: hex(ks.K_confirmP),
      K_confirmV: hex(ks.K_confirmV),
      K_shared: hex(ks.K_shared),
      confirmV: hex(cV),
      confirmP: hex(cP),
      message2: hex(message2),
      message3: hex(message3),
    },
    transport: {
      transportOkm: hex(transportOkm),
      k_c2s: hex(transportOkm.subarray(0, 32)),
      k_s2c: hex(transportOkm.subarray(32)),
      clientFirstFrame: hex(clientFrame),
      clientFirstFramePlaintext: hex(concat(...k.clientMessages.map((m) => concat(Uint8Array.of(0, utf8(m).length >> 8, utf8(m).length & 0xff), utf8(m))))),
      serverFirstFrame: hex(serverFrame),
      serverFirstFramePlaintext: hex(concat(...k.serverMessages.map((m) => concat(Uint8Array.of(0, utf8(m).length >> 8, utf8(m).length & 0xff), utf8(m))))),
      clientSecondWrite: hex(concat(message3, clientFrame)),
    },
    layout: {
      preamble: [
        { offset: 0, size: 1, field: "marker 00 (the reference protocol never starts with 0)" },
        { offset: 1, size: 4, field: "'NSTP' (4e 53 54 50)" },
        { offset: 5, size: 1, field: "version 03" },
        { offset: 6, size: 1, field: "username length n, 1..255" },
        { offset: 7, size: usernameBytes.length, field: "username, UTF-8, exactly the bytes used as idProver" },
      ],
      message1: [
        { offset: 0, size: 2, field: "length 65 (00 41), big-endian" },
        { offset: 2, size: 65, field: "shareP = x·G + w0·M, uncompressed SEC1: 04 || X || Y" },
      ],
      message2: [
        { offset: 0, size: 2, field: "length 97 (00 61), big-endian; 00 00 here instead is the busy signal" },
        { offset: 2, size: 65, field: "shareV = y·G + w0·N, uncompressed SEC1" },
        { offset: 67, size: 32, field: "confirmV = HMAC-SHA256(K_confirmV, shareP)" },
      ],
      message3: [
        { offset: 0, size: 2, field: "length 32 (00 20), big-endian" },
        { offset: 2, size: 32, field: "confirmP = HMAC-SHA256(K_confirmP, shareV)" },
      ],
      frame: [
        { offset: 0, size: 2, field: "ciphertext length, big-endian" },
        { offset: 2, size: -1, field: "AES-256-GCM ciphertext of one or more chunks, then its 16-byte tag" },
      ],
      chunk: [
        { offset: 0, size: 1, field: "type: 0 last chunk of a message, 1 more follows, 2 close, 3 ping" },
        { offset: 1, size: 2, field: "body length, big-endian" },
        { offset: 3, size: -1, field: "body" },
      ],
    },
    fields: {
      "inputs.password": "the user's password, UTF-8",
      "inputs.username": "the username; usernameHex its UTF-8 bytes as sent in the preamble",
      "inputs.deviceSalt": "the server's device salt (idVerifier)",
      "inputs.pbkdf2Iterations": "PBKDF2-HMAC-SHA256 iterations for the PSK",
      "inputs.x": "the client's scalar, 32 bytes big-endian (fixed here; fresh and uniform in [1, n-1] in real use)",
      "inputs.y": "the server's scalar, likewise",
      "inputs.clientMessages": "the application messages the client sends first, packed in one frame",
      "inputs.serverMessages": "the server's first application message(s), in one frame",
      "keys.pbkdf2Salt": "deviceSalt || username: the PBKDF2 salt of every nstp version",
      "keys.psk": "PBKDF2-HMAC-SHA256(password, pbkdf2Salt, 600000, 32)",
      "keys.w0w1Info": "'nstp/3 w0w1' || le64(len deviceSalt) || deviceSalt || le64(len username) || username",
      "keys.w0w1Okm": "HKDF-SHA256(salt = empty, IKM = psk, info = w0w1Info, 80): w0s (first 40 bytes) || w1s (last 40)",
      "keys.w0": "w0s as a big-endian integer mod n (the P-256 group order), 32 bytes big-endian",
      "keys.w1": "w1s mod n, 32 bytes big-endian (kept by the client only)",
      "keys.L": "w1·G, uncompressed SEC1: the server stores { w0, L }",
      "handshake.preamble": "see layout.preamble",
      "handshake.message1": "see layout.message1",
      "handshake.clientFirstFlight": "preamble || message1, as the client writes them (one write here; any segmentation is allowed)",
      "handshake.M": "RFC 9383 §4 M for P-256, uncompressed",
      "handshake.N": "RFC 9383 §4 N for P-256, uncompressed",
      "handshake.context": "'nstp/3 SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256' || preamble",
      "handshake.idProver": "the username bytes from the preamble",
      "handshake.idVerifier": "the device salt",
      "handshake.shareP": "x·G + w0·M",
      "handshake.shareV": "y·G + w0·N",
      "handshake.Z": "client: x·(shareV - w0·N); server: y·(shareP - w0·M)",
      "handshake.V": "client: w1·(shareV - w0·N); server: y·L",
      "handshake.TT": "le64-length-prefixed context, idProver, idVerifier, M, N, shareP, shareV, Z, V, w0 (RFC 9383 §3.4)",
      "handshake.K_main": "SHA-256(TT)",
      "handshake.K_confirmP": "first 32 bytes of HKDF-SHA256(salt = empty, K_main, 'ConfirmationKeys', 64)",
      "handshake.K_confirmV": "last 32 bytes of the same",
      "handshake.K_shared": "HKDF-SHA256(salt = empty, K_main, 'SharedKey', 32)",
      "handshake.confirmV": "HMAC-SHA256(K_confirmV, shareP), sent by the server",
      "handshake.confirmP": "HMAC-SHA256(K_confirmP, shareV), sent by the client",
      "handshake.message2": "see layout.message2",
      "handshake.message3": "see layout.message3",
      "transport.transportOkm": "HKDF-SHA256(salt = empty, K_shared, 'nstp/3 transport', 64)",
      "transport.k_c2s": "first 32 bytes: the client-to-server AES-256-GCM key (a Noise CipherState, counter from 0)",
      "transport.k_s2c": "last 32 bytes: the server-to-client key",
      "transport.clientFirstFrame": describeFrame("the client's first frame, under k_c2s"),
      "transport.clientFirstFramePlaintext": "its plaintext: each message as one chunk (see layout.chunk)",
      "transport.serverFirstFrame": describeFrame("the server's first frame, under k_s2c"),
      "transport.serverFirstFramePlaintext": "its plaintext",
      "transport.clientSecondWrite": "message3 || clientFirstFrame: confirmP may share a write with the first frames",
    },
  };
}
