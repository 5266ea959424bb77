/**
 * A v3 client written from docs/PROTOCOL.md §v3 alone, with plain @noble/curves (p256) for the group
 * and node:crypto for everything else, and nothing from this project's protocol code, so that
 * interoperability tests do not test the code against itself. One function per step of the document.
 * After the handshake the transport is v2's, so the v2 peer's transport (itself written from the
 * document) carries the session.
 */
import * as crypto from "node:crypto";
import { p256 } from "@noble/curves/nist.js";
import { Reader, dial, referencePsk } from "./reference-peer.ts";
import { type V2PeerSession, transportSession } from "./v2-peer.ts";

const P = p256.Point;
type Pt = InstanceType<typeof P>;
const n = P.Fn.ORDER;
const G = P.BASE;
// §v3 Notation: RFC 9383's M and N for P-256.
const M = P.fromHex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f");
const N = P.fromHex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49");
const EMPTY = Buffer.alloc(0);

const big = (b: Uint8Array) => BigInt("0x" + (Buffer.from(b).toString("hex") || "0"));
const be32 = (v: bigint) => Buffer.from(v.toString(16).padStart(64, "0"), "hex");
const enc = (p: Pt) => Buffer.from(p.toBytes(false));
/** len(s): 8-byte little-endian length. */
const len = (b: Buffer) => {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt(b.length));
  return out;
};
const lp = (...parts: Buffer[]) => Buffer.concat(parts.flatMap((p) => [len(p), p]));
const hkdf = (ikm: Buffer, info: string | Buffer, size: number) => Buffer.from(crypto.hkdfSync("sha256", ikm, EMPTY, info, size));
const hmac = (k: Buffer, m: Buffer) => crypto.createHmac("sha256", k).update(m).digest();
const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);

/** §v3 Keys: w0 and w1 from the PSK. */
export function peerKeys(psk: Buffer, deviceSalt: Buffer, username: string): { w0: bigint; w1: bigint } {
  const user = Buffer.from(username, "utf8");
  const okm = hkdf(psk, Buffer.concat([Buffer.from("nstp/3 w0w1"), lp(deviceSalt, user)]), 80);
  return { w0: big(okm.subarray(0, 40)) % n, w1: big(okm.subarray(40)) % n };
}

/** §v3 Point validation: 65 bytes, prefix 04, on the curve (fromBytes checks the rest). */
function point(b: Buffer): Pt {
  if (b.length !== 65 || b[0] !== 0x04) throw new Error("not an uncompressed point");
  const p = P.fromBytes(b);
  if (p.is0()) throw new Error("identity");
  return p;
}

export interface V3PeerOptions {
  username: string;
  deviceSalt: Buffer;
  /** The password, or the PSK already derived from it. */
  password?: string;
  psk?: Buffer;
  /** Hold message 3 back (returned as `confirmation`) to write it with the first frames. */
  holdConfirmation?: boolean;
}

/** The handshake as pure steps, so that a test can run it over a socket or against a machine. */
export class V3PeerHandshake {
  readonly preamble: Buffer;
  private readonly w0: bigint;
  private readonly w1: bigint;
  private readonly x: bigint;
  private readonly shareP: Buffer;
  private readonly opts: V3PeerOptions;

  constructor(opts: V3PeerOptions) {
    this.opts = opts;
    const user = Buffer.from(opts.username, "utf8");
    this.preamble = Buffer.concat([Buffer.from([0x00, 0x4e, 0x53, 0x54, 0x50, 0x03, user.length]), user]);
    const psk = opts.psk ?? referencePsk(opts.password!, opts.deviceSalt, opts.username);
    ({ w0: this.w0, w1: this.w1 } = peerKeys(psk, opts.deviceSalt, opts.username));
    // x fresh and uniform in [1, n-1].
    this.x = (big(crypto.randomBytes(40)) % (n - 1n)) + 1n;
    this.shareP = enc(G.multiply(this.x).add(M.multiply(this.w0)));
  }

  /** Preamble, then message 1: 00 41 || shareP. */
  hello(): Buffer {
    return Buffer.concat([this.preamble, u16(65), this.shareP]);
  }

  /**
   * Message 2's 97-byte body in; message 3 (00 20 || confirmP) and the transport keys out. Throws
   * if confirmV does not verify.
   */
  finish(body: Buffer): { message3: Buffer; toServer: Buffer; toClient: Buffer } {
    if (body.length !== 97) throw new Error(`message 2 body of ${body.length} bytes`);
    const shareV = body.subarray(0, 65);
    const t = point(shareV).subtract(N.multiply(this.w0));
    if (t.is0()) throw new Error("shareV - w0·N is the identity");
    const Z = enc(t.multiply(this.x));
    const V = enc(t.multiply(this.w1));
    const context = Buffer.concat([Buffer.from("nstp/3 SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256", "ascii"), this.preamble]);
    const user = this.preamble.subarray(7);
    const TT = lp(context, user, this.opts.deviceSalt, enc(M), enc(N), this.shareP, shareV, Z, V, be32(this.w0));
    const K_main = crypto.createHash("sha256").update(TT).digest();
    const confirmKeys = hkdf(K_main, "ConfirmationKeys", 64);
    const K_shared = hkdf(K_main, "SharedKey", 32);
    const expected = hmac(confirmKeys.subarray(32), this.shareP);
    if (!crypto.timingSafeEqual(expected, body.subarray(65))) throw new Error("confirmV did not verify");
    const confirmP = hmac(confirmKeys.subarray(0, 32), shareV);
    const keys = hkdf(K_shared, "nstp/3 transport", 64);
    return { message3: Buffer.concat([u16(32), confirmP]), toServer: keys.subarray(0, 32), toClient: keys.subarray(32) };
  }
}

export interface V3PeerSession extends V2PeerSession {
  /** Message 3, when held back: write it before (or with) the first frames. */
  confirmation?: Buffer;
}

/** Runs the v3 handshake against a server on loopback; then v2's transport. */
export async function v3Handshake(port: number, opts: V3PeerOptions): Promise<V3PeerSession> {
  const socket = await dial(port);
  const reader = new Reader(socket);
  let keys: ReturnType<V3PeerHandshake["finish"]>;
  try {
    const hs = new V3PeerHandshake(opts);
    socket.write(hs.hello());
    const length = (await reader.read(2)).readUInt16BE(0);
    if (length === 0) throw new Error("server busy");
    if (length !== 97) throw new Error(`message 2 of ${length} bytes`);
    keys = hs.finish(await reader.read(97));
  } catch (e) {
    socket.destroy();
    throw e;
  }
  const { message3, toServer, toClient } = keys;
  if (!opts.holdConfirmation) socket.write(message3);
  const session: V3PeerSession = transportSession(socket, reader, toServer, toClient);
  if (opts.holdConfirmation) session.confirmation = message3;
  return session;
}
