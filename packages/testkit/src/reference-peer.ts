/**
 * A peer written from the Dart reference's byte layout alone (DEVELOPERS.md and the vectors'
 * description), with node:net and node:crypto and nothing from this project's protocol code, so that
 * interoperability tests do not test the code against itself.
 */
import * as net from "node:net";
import * as crypto from "node:crypto";

const ITERATIONS = 600_000;

export function referencePsk(password: string, deviceSalt: Buffer, username: string): Buffer {
  return crypto.pbkdf2Sync(password, Buffer.concat([deviceSalt, Buffer.from(username, "utf8")]), ITERATIONS, 32, "sha256");
}
const hmac = (key: Buffer, ...parts: Buffer[]) => crypto.createHmac("sha256", key).update(Buffer.concat(parts)).digest();

/** A socket reader that waits for exact byte counts, with a deadline. */
export class Reader {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  ended = false;
  readonly socket: net.Socket;
  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    const end = () => {
      this.ended = true;
      this.waiters.splice(0).forEach((w) => w());
    };
    socket.on("close", end);
    socket.on("error", end);
  }
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`connection closed after ${this.buf.length}/${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} bytes`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => (clearTimeout(t), res()));
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  /** Resolves true when the peer closes within the deadline (having sent nothing more). */
  async closedWithin(timeoutMs: number): Promise<{ closed: boolean; extra: number }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) {
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => (clearTimeout(t), res()));
      });
    }
    return { closed: this.ended, extra: this.buf.length };
  }
}

/** Connects on loopback; `localAddress` picks the source address (any 127.0.0.0/8 address works on Linux). */
export function dial(port: number, host = "127.0.0.1", localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, noDelay: true, localAddress }, () => resolve(s));
    s.once("error", reject);
  });
}

export interface ReferenceSession {
  socket: net.Socket;
  reader: Reader;
  key: Buffer;
  sessionNonce: Buffer;
  /** Seals message `counter` the way the reference client does. */
  record(counter: number, plaintext: Buffer): Buffer;
  /** Reads and opens one server record. */
  readReply(): Promise<Buffer>;
}

/** Performs the reference handshake; `write` lets a test choose how bytes are cut. */
export async function referenceHandshake(
  port: number,
  opts: { username: string; psk: Buffer; write?: (s: net.Socket, b: Buffer) => Promise<void> },
): Promise<ReferenceSession> {
  const socket = await dial(port);
  const reader = new Reader(socket);
  const write = opts.write ?? (async (s, b) => void s.write(b));
  const user = Buffer.from(opts.username, "utf8");
  const clientNonce = crypto.randomBytes(16);
  await write(socket, Buffer.concat([Buffer.of(user.length), user, clientNonce]));
  const sessionNonce = await reader.read(8);
  const key = hmac(opts.psk, clientNonce, sessionNonce);
  await write(socket, hmac(key, clientNonce, sessionNonce, user));
  const proof = await reader.read(32);
  if (!crypto.timingSafeEqual(proof, hmac(key, sessionNonce, clientNonce, user))) throw new Error("server proof mismatch");
  return {
    socket,
    reader,
    key,
    sessionNonce,
    record(counter, plaintext) {
      const nonce = Buffer.concat([sessionNonce, Buffer.of(counter >>> 24, counter >>> 16, counter >>> 8, counter)]);
      const c = crypto.createCipheriv("aes-256-gcm", key, nonce);
      return Buffer.concat([nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
    },
    async readReply() {
      const len = (await reader.read(2)).readUInt16BE(0);
      const body = await reader.read(len);
      const d = crypto.createDecipheriv("aes-256-gcm", key, body.subarray(0, 12));
      d.setAuthTag(body.subarray(len - 16));
      return Buffer.concat([d.update(body.subarray(12, len - 16)), d.final()]);
    },
  };
}

/** Writes one byte at a time, each in its own write, yielding between them. */
export async function byteByByte(s: net.Socket, b: Buffer): Promise<void> {
  for (const x of b) {
    s.write(Buffer.of(x));
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * A server that behaves like the Dart reference server: it treats whatever one read returns as one
 * client message (so it needs a lockstep client) and replies "Server received: " + message.
 */
export function referenceServer(opts: { deviceSalt: Buffer; users: Record<string, string> }): Promise<{ port: number; close(): void }> {
  const server = net.createServer(async (socket) => {
    const reader = new Reader(socket);
    try {
      const len = (await reader.read(1))[0]!;
      const user = await reader.read(len);
      const clientNonce = await reader.read(16);
      const sessionNonce = crypto.randomBytes(8);
      socket.write(sessionNonce);
      const password = opts.users[user.toString("utf8")];
      if (password === undefined) return void socket.destroy();
      const key = hmac(referencePsk(password, opts.deviceSalt, user.toString("utf8")), clientNonce, sessionNonce);
      const proof = await reader.read(32);
      if (!crypto.timingSafeEqual(proof, hmac(key, clientNonce, sessionNonce, user))) return void socket.destroy();
      socket.write(hmac(key, sessionNonce, clientNonce, user));
      socket.removeAllListeners("data");
      socket.on("data", (msg: Buffer) => {
        const d = crypto.createDecipheriv("aes-256-gcm", key, msg.subarray(0, 12));
        d.setAuthTag(msg.subarray(msg.length - 16));
        const plain = Buffer.concat([d.update(msg.subarray(12, msg.length - 16)), d.final()]);
        const nonce = crypto.randomBytes(12);
        const c = crypto.createCipheriv("aes-256-gcm", key, nonce);
        const body = Buffer.concat([nonce, c.update(Buffer.concat([Buffer.from("Server received: "), plain])), c.final(), c.getAuthTag()]);
        const head = Buffer.alloc(2);
        head.writeUInt16BE(body.length);
        socket.write(Buffer.concat([head, body]));
      });
    } catch {
      socket.destroy();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as net.AddressInfo).port, close: () => server.close() })));
}
