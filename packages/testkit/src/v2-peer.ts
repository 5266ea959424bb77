/**
 * A v2 client written from docs/PROTOCOL.md §v2 and the Noise specification (rev. 34) alone, with
 * node:net and node:crypto and nothing from this project's protocol code, so that interoperability
 * tests do not test the code against itself. It is deliberately plain: one function per spec step.
 */
import * as crypto from "node:crypto";
import type * as net from "node:net";
import { Reader, dial } from "./reference-peer.ts";

const PROTOCOL_NAME = "Noise_NNpsk0_25519_AESGCM_SHA256";
const EMPTY = Buffer.alloc(0);

const sha256 = (...parts: Buffer[]) => crypto.createHash("sha256").update(Buffer.concat(parts)).digest();
/** Noise §4.3 HKDF: HKDF-SHA256 with salt = chaining key, empty info. */
const hkdf = (ck: Buffer, ikm: Buffer, n: 2 | 3): Buffer[] => {
  const okm = Buffer.from(crypto.hkdfSync("sha256", ikm, ck, EMPTY, 32 * n));
  return Array.from({ length: n }, (_, i) => okm.subarray(32 * i, 32 * (i + 1)));
};
/** Noise §12.3: 4 zero bytes, then the 64-bit counter big-endian. */
const nonce = (n: bigint) => {
  const b = Buffer.alloc(12);
  b.writeBigUInt64BE(n, 4);
  return b;
};
const seal = (k: Buffer, n: bigint, ad: Buffer, pt: Buffer) => {
  const c = crypto.createCipheriv("aes-256-gcm", k, nonce(n));
  c.setAAD(ad);
  return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
};
const open = (k: Buffer, n: bigint, ad: Buffer, ct: Buffer) => {
  const d = crypto.createDecipheriv("aes-256-gcm", k, nonce(n));
  d.setAAD(ad);
  d.setAuthTag(ct.subarray(ct.length - 16));
  return Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
};
const x25519Pair = () => {
  const { publicKey, privateKey } = crypto.generateKeyPairSync("x25519");
  return { privateKey, pub: Buffer.from(publicKey.export({ format: "der", type: "spki" })).subarray(-32) };
};
const x25519 = (privateKey: crypto.KeyObject, peer: Buffer) =>
  crypto.diffieHellman({
    privateKey,
    publicKey: crypto.createPublicKey({ key: Buffer.concat([Buffer.from("302a300506032b656e032100", "hex"), peer]), format: "der", type: "spki" }),
  });
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

/** One direction's transport cipher: implicit counter, Rekey() after every `interval` frames. */
class Direction {
  n = 0n;
  k: Buffer;
  constructor(k: Buffer) {
    this.k = k;
  }
  private step(): void {
    this.n++;
    if (this.n % (1n << 20n) === 0n) this.k = seal(this.k, 0xffffffffffffffffn, EMPTY, Buffer.alloc(32)).subarray(0, 32);
  }
  seal(pt: Buffer): Buffer {
    const ct = seal(this.k, this.n, EMPTY, pt);
    this.step();
    return ct;
  }
  open(ct: Buffer): Buffer {
    const pt = open(this.k, this.n, EMPTY, ct);
    this.step();
    return pt;
  }
}

export interface V2PeerSession {
  /** Sends messages, each in its own chunks (max 65,516-byte bodies), all frames in one write. */
  send(messages: Buffer[]): void;
  /** The frames send() would write, to write them some other way. */
  encode(messages: Buffer[]): Buffer;
  /** One frame sealing `chunks` (chunk headers included) as given, however malformed. */
  frame(chunks: Buffer): Buffer;
  /** Reads the next whole message (reassembling chunks). */
  receive(timeoutMs?: number): Promise<Buffer>;
  /** Sends a frame holding one empty ping chunk (type 3). */
  ping(): void;
  /** Sends the close chunk. */
  close(): void;
  /** Whether the server's close chunk has been read. */
  readonly closedByServer: boolean;
  reader: Reader;
  destroy(): void;
}

/**
 * Runs the v2 handshake (preamble, message 1, message 2) against a server on loopback, then (unless
 * `confirm` is false) sends a ping frame: the server counts the session only once a first frame from
 * the client authenticates (§v2 "Key confirmation"). `onFlight` sees the preamble and message 1 as sent.
 */
export async function v2Handshake(
  port: number,
  opts: {
    username: string;
    psk: Buffer;
    splitPreamble?: boolean;
    confirm?: boolean;
    onFlight?: (flight: Buffer) => void;
    /** Where to connect (default 127.0.0.1) and from which local address. */
    host?: string;
    localAddress?: string;
    /** Bytes sent before the preamble (a PROXY protocol header, in tests). */
    prefix?: Buffer;
  },
): Promise<V2PeerSession> {
  const socket = await dial(port, opts.host, opts.localAddress);
  const reader = new Reader(socket);
  const user = Buffer.from(opts.username, "utf8");
  const preamble = Buffer.concat([Buffer.from([0x00, 0x4e, 0x53, 0x54, 0x50, 0x02, user.length]), user]);

  // Noise §5.2 InitializeSymmetric: the 32-byte name is used as h directly; ck = h; MixHash(prologue).
  let h: Buffer = Buffer.from(PROTOCOL_NAME, "ascii");
  let ck: Buffer = h;
  h = sha256(h, preamble);
  // -> psk, e (§9: psk = MixKeyAndHash; e = MixHash(e.pub) and, in a psk handshake, MixKey(e.pub)).
  let [ck1, tempH, k] = hkdf(ck, opts.psk, 3);
  ck = ck1!;
  h = sha256(h, tempH!);
  const e = x25519Pair();
  h = sha256(h, e.pub);
  [ck, k] = hkdf(ck, e.pub, 2) as [Buffer, Buffer];
  const tag1 = seal(k!, 0n, h, EMPTY); // EncryptAndHash(empty payload) with n = 0
  h = sha256(h, tag1);
  const message1 = Buffer.concat([e.pub, tag1]);
  opts.onFlight?.(Buffer.concat([preamble, u16(message1.length), message1]));
  if (opts.prefix) socket.write(opts.prefix);
  if (opts.splitPreamble) {
    socket.write(preamble);
    await new Promise((r) => setTimeout(r, 20));
    socket.write(Buffer.concat([u16(message1.length), message1]));
  } else {
    socket.write(Buffer.concat([preamble, u16(message1.length), message1]));
  }

  // <- e, ee
  const len = (await reader.read(2)).readUInt16BE(0);
  if (len !== 48) throw new Error(`message 2 of ${len} bytes`);
  const message2 = await reader.read(len);
  const re = message2.subarray(0, 32);
  h = sha256(h, re);
  [ck, k] = hkdf(ck, re, 2) as [Buffer, Buffer];
  [ck, k] = hkdf(ck, x25519(e.privateKey, re), 2) as [Buffer, Buffer];
  open(k!, 0n, h, message2.subarray(32)); // throws if the server does not know the PSK
  const [toServer, toClient] = hkdf(ck, EMPTY, 2);
  return transportSession(socket, reader, toServer!, toClient!, opts.confirm !== false);
}

/**
 * §v2 "Transport" over an open socket, from the two directions' keys: v2's own, or v3's
 * k_c2s and k_s2c (v3's transport is v2's, unchanged). `confirm` sends a ping frame first (v2's
 * key confirmation; v3 confirms with confirmP instead).
 */
export function transportSession(socket: net.Socket, reader: Reader, toServer: Buffer, toClient: Buffer, confirm = false): V2PeerSession {
  const tx = new Direction(toServer);
  const rx = new Direction(toClient);

  const inbox: Buffer[] = [];
  let partial: Buffer[] = [];
  let closedByServer = false;
  const frame = (chunks: Buffer) => {
    const ct = tx.seal(chunks);
    return Buffer.concat([u16(ct.length), ct]);
  };
  const encode = (messages: Buffer[]): Buffer => {
    const frames: Buffer[] = [];
    for (const m of messages) {
      let off = 0;
      do {
        const body = m.subarray(off, off + 65_516);
        off += body.length;
        frames.push(frame(Buffer.concat([Buffer.from([off === m.length ? 0 : 1]), u16(body.length), body])));
      } while (off < m.length);
    }
    return Buffer.concat(frames);
  };
  const ping = () => socket.write(frame(Buffer.from([3, 0, 0])));
  if (confirm) ping();
  return {
    reader,
    ping,
    get closedByServer() {
      return closedByServer;
    },
    send(messages) {
      socket.write(encode(messages));
    },
    encode,
    frame,
    async receive(timeoutMs = 5000) {
      while (!inbox.length) {
        if (closedByServer) throw new Error("server closed the session");
        const n = (await reader.read(2, timeoutMs)).readUInt16BE(0);
        const pt = rx.open(await reader.read(n, timeoutMs));
        for (let off = 0; off < pt.length; ) {
          const type = pt[off]!;
          const bodyLen = pt.readUInt16BE(off + 1);
          const body = pt.subarray(off + 3, off + 3 + bodyLen);
          off += 3 + bodyLen;
          if (type === 2) closedByServer = true;
          else if (type === 3) continue; // ping: ignored
          else if (type === 1) partial.push(body);
          else if (type === 0) {
            inbox.push(Buffer.concat([...partial, body]));
            partial = [];
          } else throw new Error(`chunk type ${type}`);
        }
        if (closedByServer && !inbox.length) throw new Error("server closed the session");
      }
      return inbox.shift()!;
    },
    close() {
      socket.write(frame(Buffer.from([2, 0, 0])));
    },
    destroy() {
      socket.destroy();
    },
  };
}
