/** connect(): derive (or reuse) the key, dial, run the handshake, hand back a session. */
import { type ClientMachine, type CryptoBackend, DEFAULT_PROTOCOL, type Transport, type Wire, type WireEvents, NstpError, legacy, protocolNamed, aeadMayUsePool } from "@nstp/core";
import { defaultTransport } from "@nstp/core/node";
import { type CryptoPool, OrderedAead, pooledBackend } from "@nstp/core/pool";
import { nativeBackend } from "@nstp/core/crypto/native";
import { cachedPsk } from "./key-cache.ts";
import { DEFAULT_SESSION_LIMITS } from "./limits.ts";
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
  /**
   * A registry name (core's PROTOCOL_NAMES; default DEFAULT_PROTOCOL, the newest; README lists what
   * each is). An authentication failure is final: never retried by connectWithBackoff, never
   * answered by falling back to an older version.
   */
  protocol?: string;
  crypto?: CryptoBackend;
  /**
   * A worker pool for the key derivation: PBKDF2 (60-100 ms) then runs off the event loop, which
   * matters to an application that keeps other connections or a UI busy while it connects. v2's
   * AES-GCM also runs in it where the measured placement says so (the noble backend).
   */
  pool?: CryptoPool;
  transport?: Transport;
  connectTimeoutMs?: number;
  /** TCP keepalive's idle time on the socket (default 60 s; 0 off). */
  tcpKeepAliveMs?: number;
  limits?: Partial<SessionLimits>;
}

export interface Session {
  readonly username: string;
  readonly protocol: string;
  /** Sends one message and resolves with the next message from the server (its reply). */
  request(message: Uint8Array | string): Promise<Uint8Array>;
  /** Where the version may push: sends a message expecting no reply; resolves when the socket can take more. */
  send(message: Uint8Array | string): Promise<void>;
  /** Messages from the server that no request() was waiting for (versions that may push). */
  messages(): AsyncIterableIterator<Uint8Array>;
  /** Waits for replies still due, then closes (with the version's close chunk where it has one). */
  close(): Promise<void>;
  readonly closed: boolean;
}

/**
 * connect() over any byte stream: `open` receives the session's callbacks and returns the Wire it
 * feeds them (a WebSocket or serial adapter is one file, no core edit); the handshake runs on it.
 */
export async function connectWire(open: (events: WireEvents) => Wire | Promise<Wire>, opts: ConnectOptions): Promise<Session> {
  const session = await newSession(opts);
  let wire: Wire;
  try {
    wire = await open(session.events());
  } catch (e) {
    // Never attached (the dial failed): the session ends here, and its machine with it (dispose).
    void session.close();
    throw e;
  }
  session.attach(wire);
  await session.ready;
  return session;
}

export async function connect(opts: ConnectOptions): Promise<Session> {
  const transport = opts.transport ?? (await defaultTransport());
  return connectWire(
    (events) => transport.dial({ host: opts.host ?? "127.0.0.1", port: opts.port ?? legacy.DEMO_PORT, timeoutMs: opts.connectTimeoutMs ?? 10_000, tcpKeepAliveMs: opts.tcpKeepAliveMs }, () => events),
    opts,
  );
}

/** Derives (or reuses) the key and builds the version's machine and its session, not yet on a wire. */
async function newSession(opts: ConnectOptions): Promise<ClientSession> {
  const crypto = opts.crypto ?? nativeBackend;
  const deviceSalt = opts.deviceSalt ?? legacy.DEMO_DEVICE_SALT;
  let psk = opts.psk;
  if (!psk) {
    if (opts.password === undefined) throw new NstpError("ERR_INVALID_ARG", "connect needs a password or a psk");
    const kdf = opts.pool ? pooledBackend(crypto, opts.pool) : crypto;
    psk = await cachedPsk(kdf, { username: opts.username, password: opts.password, deviceSalt });
  }
  const entry = protocolNamed(opts.protocol ?? DEFAULT_PROTOCOL);
  let machine: ClientMachine;
  try {
    machine = entry.client({ crypto, username: opts.username, deviceSalt, psk });
  } catch (e) {
    throw new NstpError("ERR_INVALID_ARG", (e as Error).message, { cause: e });
  }
  const window = entry.defaults.window;
  // Used only where the machine offers deferred AEAD once established (machine.ts), and only for a
  // backend whose AEAD may run in the pool (native never does).
  const aead = opts.pool && aeadMayUsePool(crypto.name) ? new OrderedAead(opts.pool, crypto) : undefined;
  return new ClientSession(machine, { ...DEFAULT_SESSION_LIMITS, window, ...opts.limits }, aead);
}
