/** The server as a library: credentials and a message handler in, a listening server out. */
import { type CryptoBackend, type Logger, type Transport, DEFAULT_FLUSH_TIMEOUT_MS, PROTOCOLS, REFUSAL_SIGNAL, ServerDispatch, type ServerDispatchOptions, parseProtocolList, type Wire, type WireEvents, concat, legacy, v2, v3, type CredentialFakes, aeadMayUsePool } from "@nstp/core";
import { defaultTransport, silentLogger } from "@nstp/core/node";
import { type CryptoPool, warmCurve } from "@nstp/core/pool";
import { nativeBackend } from "@nstp/core/crypto/native";
import type { ConnectionLimits, MessageHandler } from "./connection-context.ts";
import { ServerConnection } from "./connection.ts";
import { DummyKeys, type KeyStore } from "./credentials.ts";
import { type AdmissionOptions, DEFAULT_ADMISSION, HandshakeAdmission } from "./admission.ts";
import { type BucketOptions, DEFAULT_ADDRESS_BUDGET, DEFAULT_USER_BUDGET, GuessBudget, type SharedUserBudget } from "./budget.ts";
import { ServerStats } from "./stats.ts";
import { proxyAcceptor } from "./proxy-acceptor.ts";
import { TrustedProxies } from "./trusted-proxies.ts";
import { defaultMaxConnections } from "./capacity.ts";
import { ClockWheel } from "./clock-wheel.ts";
import { CurveStepCap, defaultCurveStepsPerSource, defaultCurveStepsUnproven } from "./curve-cap.ts";
import { ProvenSources } from "./proven-sources.ts";
import { LookupGate, defaultUncachedLookupsPerSource, defaultUncachedLookupsUnproven } from "./lookup-gate.ts";
import { DEFAULT_WRITE_STALL_MIN_BYTES_PER_SECOND, DEFAULT_WRITE_STALL_TIMEOUT_MS, clockGranularityMs } from "./lifetime.ts";
import { UnfinishedBudget, defaultMaxUnfinishedBytes } from "./unfinished-budget.ts";
import { CollectionNudge } from "@nstp/core/node";

export const DEFAULT_HOST = "127.0.0.1";

export interface ServerOptions {
  /** Where user keys come from (a users file, a table, or your own lookup). */
  keys: KeyStore;
  /** Decides each reply; default: the reference's "Server received: " + message. */
  handler?: MessageHandler;
  /** Default 127.0.0.1: listening elsewhere is an explicit choice. */
  host?: string;
  /** Default 8080 (the reference's); 0 picks a free port. */
  port?: number;
  crypto?: CryptoBackend;
  transport?: Transport;
  logger?: Logger;
  /**
   * Open connections at most; a connection beyond it gets the busy signal. Default: what the
   * open-file limit leaves room for (capacity.ts: 18,720 at a limit of 20,000), at most 100,000.
   */
  maxConnections?: number;
  /**
   * Connections in the handshake at most (default 512); a newcomer at the cap is admitted and the
   * handshake stalled longest is closed (admission.ts).
   */
  maxHandshaking?: number;
  admission?: Partial<Omit<AdmissionOptions, "maxHandshaking">>;
  /** Guesses per source address: burst 20, 1 per second by default (budget.ts). */
  failureLimit?: Partial<BucketOptions & { maxSources: number }>;
  /** Guesses per username, from any address: burst 20, 1 per second; backoff up to half the handshake timeout. */
  userBudget?: Partial<BucketOptions & { maxUsers: number; maxWaitMs: number; trustSeconds: number }>;
  /** A per-user budget shared with other hosts (PostgresCredentialStore.openGuessBudget), checked beside this one. */
  sharedUserBudget?: SharedUserBudget;
  /**
   * v3 curve steps in flight per source address (an IPv6 source per /64, as for the guessing budget)
   * when there is a `pool`; beyond it the handshake is refused busy, as by a full pool queue. Default
   * an eighth of the pool's queue, at least 1 (curve-cap.ts). Without a pool, no cap: nothing queues.
   */
  maxCurveStepsPerSource?: number;
  /**
   * With a pool: v3 curve steps in flight from every source no peer has proven its key from lately
   * (a session alive from it, or ended within 24 hours), together; beyond it their handshakes are refused
   * busy, so strangers holding many sources leave devices known by their address the rest of the
   * queue. Default half the pool's queue, at least 1 (curve-cap.ts).
   */
  maxCurveStepsUnproven?: number;
  /**
   * Key lookups under way at once per source address (an IPv6 source per /64), cached names' too,
   * each counted until the store's work for it is over and at least `KeyStore.lookupHoldMs`, so that
   * being refused does not tell which names are cached; beyond it the handshake is refused busy. A
   * source with a session alive from it, or ended within 24 hours, is exempt. Default an eighth of the
   * store's `maxPending`, at least 1; 8 for a store that does not say (lookup-gate.ts).
   */
  maxUncachedLookupsPerSource?: number;
  /**
   * Such lookups under way from every source with no session alive from it or ended within 24 hours,
   * together; beyond it their handshakes are refused busy, so strangers holding many addresses leave
   * devices known by their address the rest of the store's bound. Default half the store's
   * `maxPending`; no cap for a store that does not say (lookup-gate.ts).
   */
  maxUncachedLookupsUnproven?: number;
  limits?: Partial<ConnectionLimits>;
  /**
   * Bytes that unfinished v2 and v3 messages (begun in "more to follow" chunks) may hold, summed over
   * every session; beyond it the sessions whose messages grew slowest (bytes held ÷ time since
   * begun) are ended (message_budget). Default a quarter of the host's memory (or of a container's
   * lower limit), at most 1 GiB, at least one message of the maximum (unfinished-budget.ts).
   */
  maxUnfinishedBytes?: number;
  /**
   * A worker pool: v2 AES-GCM runs in it where the measured placement says so (the noble backend on
   * batches of 1 KiB and more; never for native, which is faster inline). Give the same pool as the
   * key store's.
   */
  pool?: CryptoPool;
  /** Versions served, by registry name (default: every one, "legacy,v2,v3"). */
  protocols?: readonly string[];
  /** Alias kept from before `protocols`: false stops serving the reference protocol. */
  legacy?: boolean;
  /** The device salt the users' keys were derived with (v3 binds it into SPAKE2+). Default 01..08. */
  deviceSalt?: Uint8Array;
  /**
   * While connections arrive, a young-generation collection at most this often (default 50 ms; 0
   * never): the handshakes' native crypto temporaries, which the collectors do not count, otherwise
   * pile up between collections and stay in RSS (@nstp/core collection.ts).
   */
  collectionIntervalMs?: number;
  /**
   * Listen with SO_REUSEPORT, sharing the port with other processes that do (the CLI's --workers:
   * supervisor.ts). Default false.
   */
  reusePort?: boolean;
  /** TCP keepalive's idle time on accepted sockets (default 60 s; 0 off). */
  tcpKeepAliveMs?: number;
  /**
   * Load balancers (addresses or CIDR blocks) whose connections begin with a PROXY protocol header
   * (v1 or v2), required from them and refused from anyone else; the client address in it is the
   * connection's remoteAddress. Empty or absent: no PROXY protocol.
   */
  trustedProxies?: readonly string[];
}

/**
 * The floor rate a message sent in several frames must keep on average: 64 KiB/s (half a megabit),
 * as slow as a device on a poor cellular link uploads. The record deadline (10 s for each 64 KiB
 * frame) allows a slower drip frame by frame, but at that pace one message could hold the message
 * maximum (16 MiB) for 43 minutes.
 */
const MESSAGE_FLOOR_BYTES_PER_SECOND = 64 * 1024;

/**
 * The default message deadline for a message maximum: that many bytes at the floor rate (16 MiB: 256 s),
 * and never under a minute, however small the maximum.
 */
export function defaultMessageTimeoutMs(maxMessageSizeV2: number): number {
  return Math.max(60_000, Math.ceil(maxMessageSizeV2 / MESSAGE_FLOOR_BYTES_PER_SECOND) * 1000);
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxMessageSize: legacy.DEFAULT_MAX_MESSAGE_SIZE,
  maxMessageSizeV2: v2.DEFAULT_MAX_MESSAGE_SIZE,
  handshakeTimeoutMs: 10_000,
  recordTimeoutMs: 10_000,
  maxPendingMessages: 64,
  writeHighWaterMark: 1 << 20,
  idleTimeoutMs: 300_000,
  legacyIdleTimeoutMs: 0,
  maxSessionLifetimeMs: 0,
  writeStallTimeoutMs: DEFAULT_WRITE_STALL_TIMEOUT_MS,
  writeStallMinBytesPerSecond: DEFAULT_WRITE_STALL_MIN_BYTES_PER_SECOND,
  messageTimeoutMs: defaultMessageTimeoutMs(v2.DEFAULT_MAX_MESSAGE_SIZE),
  flushTimeoutMs: DEFAULT_FLUSH_TIMEOUT_MS,
};

const REFERENCE_PREFIX_BYTES = new TextEncoder().encode(legacy.REFERENCE_REPLY_PREFIX);

export const referenceHandler: MessageHandler = (message) => concat(REFERENCE_PREFIX_BYTES, message);

export interface RunningServer {
  readonly host: string;
  readonly port: number;
  readonly stats: ServerStats;
  readonly transport: string;
  /** The connection cap in force (maxConnections, or its default). */
  readonly maxConnections: number;
  /**
   * Serves a connection that arrived some other way (a WebSocket or serial adapter: one file, no core
   * edit): admission, the budget and the handshake as for the listener's own. Returns its callbacks.
   */
  accept(wire: Wire): WireEvents;
  /**
   * Stops accepting, lets each session finish the replies already due (v2 sessions end with a close
   * chunk), and closes everything still open after `graceMs` (default 5,000; 0 closes at once).
   */
  close(opts?: { graceMs?: number }): Promise<void>;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const crypto = opts.crypto ?? nativeBackend;
  const transport = opts.transport ?? (await defaultTransport());
  const log = opts.logger ?? silentLogger;
  const stats = new ServerStats();
  const live = new Set<ServerConnection>();
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  // A raised (or lowered) message maximum moves the default message deadline with it.
  if (opts.limits?.messageTimeoutMs === undefined) limits.messageTimeoutMs = defaultMessageTimeoutMs(limits.maxMessageSizeV2);
  const maxHandshaking = opts.maxHandshaking ?? 512;
  const maxConnections = opts.maxConnections ?? defaultMaxConnections(maxHandshaking);
  const admission = new HandshakeAdmission({ ...DEFAULT_ADMISSION, ...opts.admission, maxHandshaking });
  const budget = new GuessBudget({
    address: { ...DEFAULT_ADDRESS_BUDGET, ...opts.failureLimit },
    user: { ...DEFAULT_USER_BUDGET, maxWaitMs: limits.handshakeTimeoutMs / 2, ...opts.userBudget },
    shared: opts.sharedUserBudget,
  });
  // Sources a peer proved its key from lately: strangers' floods leave them their share (proven-sources.ts).
  const trustMs = (opts.userBudget?.trustSeconds ?? DEFAULT_USER_BUDGET.trustSeconds) * 1000;
  const proven = new ProvenSources({ trustMs, max: opts.failureLimit?.maxSources ?? DEFAULT_ADDRESS_BUDGET.maxSources });
  // One source may have only a few lookups beyond the store's cache under way (lookup-gate.ts).
  const lookupGate = new LookupGate({
    maxPerSource: opts.maxUncachedLookupsPerSource ?? defaultUncachedLookupsPerSource(opts.keys.maxPending),
    maxUnproven: opts.maxUncachedLookupsUnproven ?? defaultUncachedLookupsUnproven(opts.keys.maxPending),
    trustMs,
    maxProvenSources: opts.failureLimit?.maxSources ?? DEFAULT_ADDRESS_BUDGET.maxSources,
    proven,
  });
  // With a pool, one source may hold only its share of the pool's queue with curve steps, and the
  // sources not proven only half of it together (curve-cap.ts).
  const curveCap = opts.pool
    ? new CurveStepCap(opts.maxCurveStepsPerSource ?? defaultCurveStepsPerSource(opts.pool.maxQueue), {
        proven,
        maxUnproven: opts.maxCurveStepsUnproven ?? defaultCurveStepsUnproven(opts.pool.maxQueue),
      })
    : undefined;
  // Every message in progress, over the sessions, holds at most this (unfinished-budget.ts).
  const unfinished = new UnfinishedBudget(opts.maxUnfinishedBytes ?? defaultMaxUnfinishedBytes(v2.retainedLimit(limits.maxMessageSizeV2)));
  stats.defence = { admission, budget, curveCap, lookupGate, unfinished };
  // Admission counts event-loop turns while it has fresh connections or runs over its cap (admission.ts).
  let turning = false;
  const countTurns = () => {
    if (turning || !admission.wantsTurns) return;
    turning = true;
    setImmediate(() => {
      turning = false;
      for (const c of admission.nextTurn() as ServerConnection[]) c.evict();
      countTurns();
    });
  };
  // One set of stand-ins per server: an unknown name gets the same fake on every attempt.
  const fakeVerifiers = new v3.FakeVerifiers(crypto);
  const fakes: CredentialFakes = { psk: new DummyKeys(crypto).key, verifier: (u) => fakeVerifiers.record(u) };
  // `legacy: false` is the alias kept from before `protocols`: the reference protocol is dropped.
  const enabled = (opts.protocols ? parseProtocolList(opts.protocols.join(",")) : PROTOCOLS).filter((p) => opts.legacy !== false || p.name !== "legacy");
  // One options object for every connection's machine: made per connection, it and its limits
  // table were three objects of each idle session (the fleet bench).
  const dispatchOptions: ServerDispatchOptions = {
    crypto,
    protocols: enabled,
    deviceSalt: opts.deviceSalt,
    // v3's curve step goes to the driver, which runs it inline or in the pool (pool/curve.ts).
    deferCurve: opts.pool !== undefined,
    fakes,
    // The reference's limit is its own; every later version shares v2's transport and its limit.
    maxMessageSize: Object.fromEntries(enabled.map((p) => [p.name, p.name === "legacy" ? limits.maxMessageSize : limits.maxMessageSizeV2])),
  };
  const ctx = {
    crypto,
    keys: opts.keys,
    lookupGate,
    handler: opts.handler ?? referenceHandler,
    limits,
    newMachine: () => new ServerDispatch(dispatchOptions),
    // A backend whose AEAD never runs in the pool (native) gets no per-connection OrderedAead.
    aeadPool: opts.pool && aeadMayUsePool(crypto.name) ? opts.pool : undefined,
    curvePool: opts.pool,
    curveCap,
    log,
    stats,
    onClosed: (c: ServerConnection) => live.delete(c),
    admission,
    budget,
    clocks: new ClockWheel(clockGranularityMs(limits)),
    unfinished,
  };
  const nudge = new CollectionNudge(opts.collectionIntervalMs ?? 50);
  const admit = (wire: Wire, headerMs = 0): WireEvents => {
    stats.sockets++;
    nudge.note();
    // Refused before any work: at maxConnections, or from an address out of guesses. Two zero bytes
    // then a close read as "busy" in both protocols: v2's busy signal in place of message 2, and a
    // close before the reference's 8-byte session nonce. At the handshake cap a newcomer is refused the
    // same way only while every handshake there is progressing; otherwise a stalled one is evicted.
    if (live.size >= maxConnections || !budget.allows(wire.remoteAddress)) {
      stats.refused++;
      wire.write(REFUSAL_SIGNAL);
      wire.end();
      return { data() {}, drain() {}, close: () => void stats.sockets-- };
    }
    // A PROXY header came first: the handshake has what is left of the deadline.
    const limits = headerMs > 0 ? { ...ctx.limits, handshakeTimeoutMs: Math.max(1, ctx.limits.handshakeTimeoutMs - headerMs) } : undefined;
    const conn = new ServerConnection(wire, limits ? { ...ctx, limits } : ctx);
    live.add(conn);
    const victim = admission.admit(conn) as ServerConnection | undefined;
    if (victim === conn) stats.refused++;
    victim?.evict(victim === conn);
    countTurns();
    return conn;
  };
  const trusted = opts.trustedProxies?.length ? new TrustedProxies(opts.trustedProxies) : undefined;
  // v3's curve tables and code, built before the first handshake would pay for them on the loop.
  if (enabled.some((p) => p.name === "v3")) await warmCurve(opts.pool);
  const listener = await transport.listen(
    {
      host: opts.host ?? DEFAULT_HOST,
      port: opts.port ?? legacy.DEMO_PORT,
      // The transport's own cap, beyond which it closes without a word, leaves room for the sockets
      // that are refused with the busy signal or still flushing their last bytes (each bounded by
      // the flush deadline), so that a client at maxConnections is told "busy".
      // Admission may run over maxHandshaking by as much again for two event-loop turns (admission.ts).
      maxConnections: maxConnections + 2 * maxHandshaking,
      flushTimeoutMs: ctx.limits.flushTimeoutMs,
      reusePort: opts.reusePort,
      tcpKeepAliveMs: opts.tcpKeepAliveMs,
    },
    trusted
      ? proxyAcceptor({ trusted, timeoutMs: ctx.limits.handshakeTimeoutMs, maxPending: maxHandshaking, stats, log }, admit)
      : admit,
  );
  // Removing (or re-keying) a user ends that user's sessions, and handshakes in progress, at once.
  const unsubscribe = opts.keys.onUserRemoved?.((username) => {
    for (const c of [...live]) if (c.user === username) c.end("user_removed");
  });
  return {
    host: listener.host,
    port: listener.port,
    stats,
    transport: transport.name,
    maxConnections,
    accept: (wire) => admit(wire),
    async close(closeOpts) {
      // Stop accepting first, then end the live connections: node:net's close() resolves only once
      // every connection is gone, so awaiting it before the shutdowns would wait forever.
      unsubscribe?.();
      nudge.stop();
      const stopped = listener.close();
      const graceMs = closeOpts?.graceMs ?? 5000;
      if (graceMs <= 0) {
        for (const c of [...live]) c.shutdown();
      } else {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
        await Promise.race([Promise.all([...live].map((c) => c.drainAndClose())), deadline]);
        clearTimeout(timer);
        for (const c of [...live]) c.destroy();
      }
      await stopped;
    },
  };
}
