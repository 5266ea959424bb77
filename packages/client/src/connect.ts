/** connect(): derive (or reuse) the key, dial, run the handshake, hand back a session. */
import { type CryptoBackend, type Transport, NstpError, defaultTransport, legacy, nativeBackend } from "@nstp/core";
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
  /** "legacy" is the Dart reference protocol (the only one until v2 lands). */
  protocol?: "legacy";
  crypto?: CryptoBackend;
  transport?: Transport;
  connectTimeoutMs?: number;
  limits?: Partial<SessionLimits>;
}

export interface Session {
  readonly username: string;
  /** Sends one message and resolves with the server's reply to it. */
  request(message: Uint8Array | string): Promise<Uint8Array>;
  /** Waits for replies still due, then closes. */
  close(): Promise<void>;
  readonly closed: boolean;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  handshakeTimeoutMs: 10_000,
  replyTimeoutMs: 30_000,
  window: 1,
  maxQueued: 4096,
};

export async function connect(opts: ConnectOptions): Promise<Session> {
  const crypto = opts.crypto ?? nativeBackend;
  const deviceSalt = opts.deviceSalt ?? legacy.DEMO_DEVICE_SALT;
  let psk = opts.psk;
  if (!psk) {
    if (opts.password === undefined) throw new NstpError("ERR_INVALID_ARG", "connect needs a password or a psk");
    psk = await cachedPsk(crypto, { username: opts.username, password: opts.password, deviceSalt });
  }
  let machine: legacy.LegacyClient;
  try {
    machine = new legacy.LegacyClient({ crypto, username: opts.username, psk });
  } catch (e) {
    throw new NstpError("ERR_INVALID_ARG", (e as Error).message, { cause: e });
  }
  const session = new ClientSession(machine, { ...DEFAULT_SESSION_LIMITS, ...opts.limits });
  const transport = opts.transport ?? (await defaultTransport());
  const wire = await transport.dial(
    { host: opts.host ?? "127.0.0.1", port: opts.port ?? legacy.DEMO_PORT, timeoutMs: opts.connectTimeoutMs ?? 10_000 },
    () => session.events(),
  );
  session.attach(wire);
  await session.ready;
  return session;
}
