/** connect(): derive (or reuse) the key, dial, run the handshake, hand back a session. */
import { type CryptoBackend, type Transport, NstpError, legacy, v2 } from "@nstp/core";
import { defaultTransport } from "@nstp/core/node";
import { type CryptoPool, OrderedAead, pooledBackend } from "@nstp/core/pool";
import { nativeBackend } from "@nstp/core/crypto/native";
import { cachedPsk } from "./key-cache.ts";
import { ClientSession, type SessionLimits } from "./session.ts";

export interface ConnectOptions {
  username: string;
  /** The user's password; or give `psk` if the key was derived elsewhere. */
  password?: string;
  psk?: Uint8Array;
  /** Default: the reference's 01..08 (use your device's salt). */
  deviceSalt?: Uint8Array;
  host?: string;
  port?: number;
  /** "v2" (default): Noise NNpsk0. "legacy": the Dart reference protocol, for servers that speak only it. */
  protocol?: "v2" | "legacy";
  crypto?: CryptoBackend;
  /**
   * A worker pool for the key derivation: PBKDF2 (60-100 ms) then runs off the event loop, which
   * matters to an application that keeps other connections or a UI busy while it connects. v2's
   * AES-GCM also runs in it where the measured placement says so (the noble backend).
   */
  pool?: CryptoPool;
  transport?: Transport;
  connectTimeoutMs?: number;
  limits?: Partial<SessionLimits>;
}

export interface Session {
  readonly username: string;
  readonly protocol: "v2" | "legacy";
  /** Sends one message and resolves with the next message from the server (its reply). */
  request(message: Uint8Array | string): Promise<Uint8Array>;
  /** v2: sends a message expecting no reply; resolves when the socket can take more. */
  send(message: Uint8Array | string): Promise<void>;
  /** v2: messages from the server that no request() was waiting for. */
  messages(): AsyncIterableIterator<Uint8Array>;
  /** Waits for replies still due, then closes (v2: with a close chunk). */
  close(): Promise<void>;
  readonly closed: boolean;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  handshakeTimeoutMs: 10_000,
  replyTimeoutMs: 30_000,
  window: 1,
  maxQueued: 65_536,
  maxBuffered: 1024,
  writeHighWaterMark: 1 << 20,
  keepaliveMs: 60_000,
};

/** v2 pipelines: its server answers in order and frames carry their own boundaries. */
export const V2_WINDOW = 4096;

export async function connect(opts: ConnectOptions): Promise<Session> {
  const crypto = opts.crypto ?? nativeBackend;
  const deviceSalt = opts.deviceSalt ?? legacy.DEMO_DEVICE_SALT;
  let psk = opts.psk;
  if (!psk) {
    if (opts.password === undefined) throw new NstpError("ERR_INVALID_ARG", "connect needs a password or a psk");
    const kdf = opts.pool ? pooledBackend(crypto, opts.pool) : crypto;
    psk = await cachedPsk(kdf, { username: opts.username, password: opts.password, deviceSalt });
  }
  const protocol = opts.protocol ?? "v2";
  let machine: legacy.LegacyClient | v2.V2Client;
  try {
    machine = protocol === "v2"
      ? new v2.V2Client({ crypto, username: opts.username, psk })
      : new legacy.LegacyClient({ crypto, username: opts.username, psk });
  } catch (e) {
    throw new NstpError("ERR_INVALID_ARG", (e as Error).message, { cause: e });
  }
  const window = protocol === "v2" ? V2_WINDOW : DEFAULT_SESSION_LIMITS.window;
  const aead = opts.pool && protocol === "v2" ? new OrderedAead(opts.pool, crypto) : undefined;
  const session = new ClientSession(machine, { ...DEFAULT_SESSION_LIMITS, window, ...opts.limits }, aead);
  const transport = opts.transport ?? (await defaultTransport());
  const wire = await transport.dial(
    { host: opts.host ?? "127.0.0.1", port: opts.port ?? legacy.DEMO_PORT, timeoutMs: opts.connectTimeoutMs ?? 10_000 },
    () => session.events(),
  );
  session.attach(wire);
  await session.ready;
  return session;
}
