/**
 * What a server connection is given (ConnectionContext) and what the application sees of it
 * (SessionInfo, MessageHandler), apart from the driver itself (connection.ts).
 */
import type { CryptoBackend, Logger, ProtocolName, ServerMachine } from "@nstp/core";
import type { CryptoPool } from "@nstp/core/pool";
import type { HandshakeAdmission } from "./admission.ts";
import type { ClockWheel } from "./clock-wheel.ts";
import type { CurveStepCap } from "./curve-cap.ts";
import type { GuessBudget } from "./budget.ts";
import type { ServerConnection } from "./connection.ts";
import type { KeyStore } from "./credentials.ts";
import type { LifetimeLimits } from "./lifetime.ts";
import type { LookupGate } from "./lookup-gate.ts";
import type { ServerStats } from "./stats.ts";
import type { UnfinishedBudget } from "./unfinished-budget.ts";

export interface SessionInfo {
  readonly username: string;
  readonly remoteAddress: string;
  readonly protocol: ProtocolName;
  /**
   * Where the version may push (v2, v3): sends a message the client did not ask for (the reference
   * protocol has no such thing and throws ERR_PROTOCOL). Resolves once the connection's write buffer is below its high-water
   * mark, so a pushing application slows down with a slow reader.
   */
  send(message: Uint8Array | string): Promise<void>;
}

/**
 * The application's answer to one message: a reply (sent in order, packed with the replies of the
 * same tick), or undefined for none (v2 only: the reference client waits for one reply per message).
 */
export type MessageHandler = (
  message: Uint8Array,
  session: SessionInfo,
) => Uint8Array | string | undefined | Promise<Uint8Array | string | undefined>;

/** Per connection; the session lifetime limits (idle, maximum lifetime) are lifetime.ts's. */
export interface ConnectionLimits extends LifetimeLimits {
  /** Largest message of the reference protocol (default 64 KiB). */
  maxMessageSize: number;
  /** Largest v2 message, enforced while it arrives (default 16 MiB). */
  maxMessageSizeV2: number;
  /** Time from accept to an authenticated session. */
  handshakeTimeoutMs: number;
  /** Time a partly received record may wait for its remaining bytes. */
  recordTimeoutMs: number;
  /**
   * Time a message sent in several frames (v2, v3) may take from its first chunk to its last,
   * pings and other frames notwithstanding; 0 never. Default: the v2 message maximum at 64 KiB/s,
   * at least a minute (defaultMessageTimeoutMs).
   */
  messageTimeoutMs: number;
  /** Messages received but not yet answered before reading pauses. */
  maxPendingMessages: number;
  /** Reply bytes queued for a slow reader before reading pauses. */
  writeHighWaterMark: number;
  /** A closing connection whose peer has not taken our last bytes by then is destroyed. */
  flushTimeoutMs: number;
}

export interface ConnectionContext {
  crypto: CryptoBackend;
  /** Where v2 AEAD runs when the measured placement says so (crypto/placement.ts). */
  aeadPool?: CryptoPool;
  /** Where v3's curve step runs when the loop is busy (crypto/placement.ts, pool/curve.ts). */
  curvePool?: CryptoPool;
  /** Each source's curve steps in flight, capped (curve-cap.ts); absent without a pool. */
  curveCap?: CurveStepCap;
  keys: KeyStore;
  /** Each source's key lookups that miss the store's cache, capped (lookup-gate.ts). */
  lookupGate?: LookupGate;
  handler: MessageHandler;
  limits: ConnectionLimits;
  /** A machine for a new connection: dispatch over the enabled versions (core's registry). */
  newMachine(): ServerMachine;
  log: Logger;
  stats: ServerStats;
  onClosed(conn: ServerConnection): void;
  /** Told of every handshake step, stall and exit (admission.ts). */
  admission: HandshakeAdmission;
  /** Reserved from before each password is judged (budget.ts). */
  budget: GuessBudget;
  /** The sessions' idle and lifetime deadlines, one timer for all (clock-wheel.ts). */
  clocks: ClockWheel;
  /** The memory unfinished messages hold, summed over the sessions and bounded (unfinished-budget.ts). */
  unfinished: UnfinishedBudget;
}
