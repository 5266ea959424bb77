/**
 * Where the server gets each user's PSK. A users file holds, per user, the PBKDF2-derived key (never
 * the password) with the salt and iteration count it was derived with.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { timingSafeEqual } from "node:crypto";
import { type Credential, type CryptoBackend, NstpError, v3, PBKDF2_ITERATIONS, PSK_SIZE, concat, derivePsk, fromHex, legacy, pskSalt, toHex, utf8 } from "@nstp/core";
import { type CryptoPool } from "@nstp/core/pool";
import { nativeBackend } from "@nstp/core/crypto/native";
import { Lru, ProvenLru } from "./lru.ts";

/** Keys kept per store (least recently used evicted), real and dummy alike. */
export const DEFAULT_MAX_CACHED_KEYS = 10_000;

/** A store's answer: a credential record, a bare PSK (stores from before v3), or undefined (unknown). */
export type KeyAnswer = Credential | Uint8Array | undefined;

/** The record a machine is given: a bare PSK is `{ psk }`. */
export function asCredential(answer: KeyAnswer): Credential | undefined {
  return answer instanceof Uint8Array ? { psk: answer } : answer;
}

/**
 * The caller's say over work a lookup would start that its cache cannot answer (a query, a
 * derivation, an unknown name's delay): a store calls it, synchronously, right before starting such
 * work, and not when it answers from its cache or joins a lookup already under way. It returns the
 * function to call once that work is over (however it ends, and not before: work that outlives its
 * connection keeps its place), or undefined to refuse: the store then throws ERR_BUSY at once. A
 * library user calling a store directly may bound such work with it. The server does not count by
 * it (that would tell a stranger which names are cached): it takes a place for every lookup from a
 * source not proven before asking the store, and hands the store an admit that never refuses and
 * only tells it when the work is over (lookup-gate.ts LookupPlace).
 */
export type LookupAdmit = () => (() => void) | undefined;

/** What a store throws when `admit` refuses, and the handshake when a source is at its cap already. */
export function sourceAtLookupCap(): NstpError {
  return new NstpError("ERR_BUSY", "this source's key lookups under way at their cap");
}

/**
 * How long the server holds a lookup's place at least (lookup-gate.ts), for a store that does not say
 * (KeyStore.lookupHoldMs): about one query to a database on the local network, with a wide margin
 * (an indexed primary-key SELECT takes about a millisecond), so that a store whose cache hits answer
 * at once and whose misses take a query counts both alike at the gate.
 */
export const DEFAULT_LOOKUP_HOLD_MS = 50;

/** The least cap on a password lookup's hold at the server's gate (PasswordKeyStore.lookupHoldMs): two derivations on this project's 2-core host. */
export const MAX_PASSWORD_LOOKUP_HOLD_MS = 250;

export interface KeyStore {
  /**
   * The user's credential record ({ psk?, verifier? }; a bare Uint8Array is a PSK), or undefined for
   * an unknown user. May throw ERR_BUSY synchronously to refuse the handshake before anything is sent.
   * `signal` aborts when the connection that asked has gone. A store that starts work beyond its
   * cache asks `admit` first (LookupAdmit); a store that never does (a table in memory) ignores it.
   */
  lookup(username: string, signal?: AbortSignal, admit?: LookupAdmit): Promise<KeyAnswer> | KeyAnswer;
  /**
   * Stores whose records hold more than a PSK (the v3 verifier) answer here with the whole record;
   * the server asks this in preference to lookup().
   */
  lookupCredential?(username: string, signal?: AbortSignal, admit?: LookupAdmit): Promise<Credential | undefined> | Credential | undefined;
  /**
   * A peer proved its key for `username` (its session is established). A store with a cache keeps
   * that name's entry apart from the names anyone may ask for, so that a flood of random names does
   * not evict it (lru.ts ProvenLru).
   */
  confirmed?(username: string): void;
  /**
   * Lookups beyond its cache the store lets be under way at once (it refuses more, ERR_BUSY): the
   * server gives each source a share of them (lookup-gate.ts).
   */
  readonly maxPending?: number;
  /**
   * The store's typical uncached lookup time (ms): the server holds the place of every lookup from a
   * source not proven at least this long, cached hit or miss alike, so that whether a source is
   * refused busy does not tell it which names are cached (lookup-gate.ts). 0 for a store that answers
   * every name in the same turn (nothing of it is ever under way); DEFAULT_LOOKUP_HOLD_MS if absent.
   */
  readonly lookupHoldMs?: number;
  /**
   * Stores that can tell when a user is removed or disabled implement this; the server subscribes
   * and ends that user's open sessions. Returns the unsubscribe.
   */
  onUserRemoved?(listener: (username: string) => void): () => void;
}

export const USERS_FILE_FORMAT = "nstp-users/1";

export interface UserRecord {
  /** PSK = PBKDF2-HMAC-SHA256(password, salt, iterations, 32), hex; absent for a v3-only user. */
  key?: string;
  /** deviceSalt || UTF-8 username, hex. */
  salt: string;
  iterations: number;
  /** The v3 verifier (docs/PROTOCOL.md §v3 "Keys"): w0, 32 bytes, and L = w1·G, 65 bytes, hex. */
  w0?: string;
  L?: string;
}

export interface UsersFile {
  format: typeof USERS_FILE_FORMAT;
  /** The device salt every record is derived with, hex (written by `bun run users`; checked when present). */
  deviceSalt?: string;
  users: Record<string, UserRecord>;
}

/**
 * A table of derived keys (from a users file); replace() swaps it whole, as on SIGHUP, and tells
 * onUserRemoved listeners of every user it drops or whose key it changes (a new password revokes
 * the sessions the old one opened).
 */
export class StaticKeyStore implements KeyStore {
  private keys: Map<string, Uint8Array>;
  /** v3 verifiers, derived once at load (readUsersFile); a user without one has its verifier derived per handshake. */
  private verifiers: ReadonlyMap<string, v3.Verifier>;
  private readonly removedListeners = new Set<(username: string) => void>();
  /** Every name is answered from the table in the same turn: nothing is ever under way, nothing to hold. */
  readonly lookupHoldMs = 0;
  constructor(keys: Map<string, Uint8Array>, verifiers: ReadonlyMap<string, v3.Verifier> = new Map()) {
    this.keys = keys;
    this.verifiers = verifiers;
  }
  replace(keys: Map<string, Uint8Array>, verifiers: ReadonlyMap<string, v3.Verifier> = new Map()): void {
    const [oldKeys, oldVerifiers] = [this.keys, this.verifiers];
    this.keys = keys;
    this.verifiers = verifiers;
    // Removed, or re-keyed in either record (a PSK dropped by `users migrate --v3-only` included).
    const same = (a: Uint8Array | undefined, b: Uint8Array | undefined) => a === b || (!!a && !!b && a.length === b.length && timingSafeEqual(a, b));
    for (const name of new Set([...oldKeys.keys(), ...oldVerifiers.keys()])) {
      const [v0, v1] = [oldVerifiers.get(name), verifiers.get(name)];
      if (same(oldKeys.get(name), keys.get(name)) && same(v0?.w0, v1?.w0) && same(v0?.L, v1?.L)) continue;
      for (const l of this.removedListeners) l(name);
    }
  }
  onUserRemoved(listener: (username: string) => void): () => void {
    this.removedListeners.add(listener);
    return () => this.removedListeners.delete(listener);
  }
  lookup(username: string): Uint8Array | undefined {
    return this.keys.get(username);
  }
  lookupCredential(username: string, _signal?: AbortSignal): Credential | undefined {
    const psk = this.keys.get(username);
    const verifier = this.verifiers.get(username);
    // A v3-only user (`users migrate --v3-only`) has a verifier and no PSK.
    return psk || verifier ? { psk, verifier } : undefined;
  }
  get size(): number {
    return new Set([...this.keys.keys(), ...this.verifiers.keys()]).size;
  }
}

/**
 * Parses a users file, checking every record against the protocol: the salt must be this device's
 * salt followed by the username, and the iteration count the protocol's (peers derive with 600,000).
 */
export function parseUsersFile(text: string, deviceSalt: Uint8Array): Map<string, Uint8Array> {
  let doc: UsersFile;
  try {
    doc = JSON.parse(text) as UsersFile;
  } catch (cause) {
    throw new Error("users file is not valid JSON", { cause });
  }
  if (doc?.format !== USERS_FILE_FORMAT || typeof doc.users !== "object" || doc.users === null) {
    throw new Error(`users file must have "format": "${USERS_FILE_FORMAT}" and a "users" object`);
  }
  if (doc.deviceSalt !== undefined && doc.deviceSalt !== toHex(deviceSalt)) {
    throw new Error(`users file was written for device salt ${doc.deviceSalt}: start the server with --device-salt ${doc.deviceSalt}`);
  }
  const keys = new Map<string, Uint8Array>();
  for (const [name, rec] of Object.entries(doc.users)) {
    legacy.checkUsernameBytes(utf8(name));
    const expectedSalt = toHex(pskSalt(deviceSalt, utf8(name)));
    if (rec.salt !== expectedSalt) throw new Error(`user "${name}": salt does not match --device-salt`);
    if (rec.iterations !== PBKDF2_ITERATIONS) throw new Error(`user "${name}": iterations must be ${PBKDF2_ITERATIONS}`);
    const { w0, L } = rec;
    if (w0 !== undefined || L !== undefined) {
      try {
        v3.verifierFromJson({ w0: w0 ?? "", L: L ?? "" }); // sizes and w0 < n
      } catch (cause) {
        throw new Error(`user "${name}": w0 and L are not a v3 verifier`, { cause });
      }
    }
    // A v3-only user (verifier, no key) has no PSK: legacy and v2 fail for them as for a wrong password.
    if (rec.key === undefined) {
      if (w0 === undefined) throw new Error(`user "${name}": a record needs a key or a v3 verifier (w0, L)`);
      continue;
    }
    const key = fromHex(rec.key);
    if (key.length !== PSK_SIZE) throw new Error(`user "${name}": key must be ${PSK_SIZE} bytes`);
    keys.set(name, key);
  }
  return keys;
}

/** A users file as the server serves it: each user's PSK, and the v3 verifier beside it. */
export interface UsersTable {
  keys: Map<string, Uint8Array>;
  verifiers: Map<string, v3.Verifier>;
}

/**
 * Reads a users file with every user's v3 verifier: the file's optional `w0`/`L` (hex), or derived
 * here, once, from the PSK (one base-point multiplication per user at load, none per handshake), so
 * that known users take the verifier's path on v3, as unknown users (fake verifiers) do.
 */
export function readUsersFile(text: string, deviceSalt: Uint8Array, crypto: CryptoBackend = nativeBackend): UsersTable {
  const keys = parseUsersFile(text, deviceSalt);
  const users = (JSON.parse(text) as { users: Record<string, Partial<v3.VerifierJson>> }).users;
  const verifiers = new Map<string, v3.Verifier>();
  // Every user, verifier-only ones (no PSK: v3 only) included; parseUsersFile checked each has one or both.
  for (const [name, { w0, L }] of Object.entries(users)) {
    try {
      verifiers.set(name, w0 !== undefined && L !== undefined ? v3.verifierFromJson({ w0, L }) : v3.verifierFromPsk(crypto, keys.get(name)!, deviceSalt, utf8(name)));
    } catch (cause) {
      throw new Error(`user "${name}": w0 and L are not a v3 verifier`, { cause });
    }
  }
  return { keys, verifiers };
}

export function loadUsersFile(path: string, deviceSalt: Uint8Array, crypto?: CryptoBackend): StaticKeyStore {
  const { keys, verifiers } = readUsersFile(readFileSync(path, "utf8"), deviceSalt, crypto);
  return new StaticKeyStore(keys, verifiers);
}

export function userRecord(deviceSalt: Uint8Array, username: string, key: Uint8Array): UserRecord {
  return { key: toHex(key), ...derivedWith(deviceSalt, username) };
}

/** The PBKDF2 parameters a record's key (and its v3 verifier) were derived with. */
export function derivedWith(deviceSalt: Uint8Array, username: string): { salt: string; iterations: number } {
  return { salt: toHex(pskSalt(deviceSalt, utf8(username))), iterations: PBKDF2_ITERATIONS };
}

/** The reference demo user (alice / userpassword), derived once at start. */
export async function demoKeyStore(crypto: CryptoBackend, deviceSalt: Uint8Array): Promise<StaticKeyStore> {
  const psk = await derivePsk(crypto, { username: legacy.DEMO_USERNAME, password: legacy.DEMO_PASSWORD, deviceSalt });
  const verifier = v3.verifierFromPsk(crypto, psk, deviceSalt, utf8(legacy.DEMO_USERNAME));
  return new StaticKeyStore(new Map([[legacy.DEMO_USERNAME, psk]]), new Map([[legacy.DEMO_USERNAME, verifier]]));
}

/**
 * Stand-in keys for usernames the server does not know, so that an unknown user gets the same replies,
 * the same close and the same timing as a wrong password. Each is derived cheaply (one HMAC) from a
 * per-process secret: stable per username, unguessable, and never a real key.
 *
 * They are cached as real keys are, in an LRU of the same size, so a repeat probe of an unknown name
 * hands the protocol the same key object each time, exactly as a repeat probe of a known name does:
 * the native backend's KeyObject cache (crypto/native.ts) is hit for both, where a fresh dummy array
 * per probe missed it and made unknown names measurably slower on the Node build.
 */
export class DummyKeys {
  private readonly crypto: CryptoBackend;
  private readonly secret: Uint8Array;
  private readonly cache: Lru<Uint8Array>;

  constructor(crypto: CryptoBackend, opts: { secret?: Uint8Array; maxCached?: number } = {}) {
    this.crypto = crypto;
    this.secret = opts.secret ?? crypto.randomBytes(32);
    this.cache = new Lru(opts.maxCached ?? DEFAULT_MAX_CACHED_KEYS);
  }

  /** The dummy key for `username`: the same array for as long as it stays cached. */
  readonly key = (username: string): Uint8Array => {
    let k = this.cache.get(username);
    if (!k) {
      k = this.crypto.hmacSha256(this.secret, concat(utf8("nstp dummy psk\0"), utf8(username)));
      this.cache.set(username, k);
    }
    return k;
  };
}

/** The application's password lookup, as the reference effectively had. */
export type PasswordLookup = (username: string) => string | undefined | Promise<string | undefined>;

/** Default time PasswordKeyStore waits for the application's lookup. */
export const DEFAULT_PASSWORD_LOOKUP_TIMEOUT_MS = 5_000;

/** Default maximum age of what PasswordKeyStore caches about a name, known or unknown alike. */
export const DEFAULT_PASSWORD_CACHE_MAX_AGE_MS = 10 * 60_000;

export interface PasswordKeyStoreOptions {
  lookup: PasswordLookup;
  deviceSalt: Uint8Array;
  crypto: CryptoBackend;
  /** Where derivations run; without one they run on the backend directly (native PBKDF2 is async). */
  pool?: CryptoPool;
  /**
   * Names cached, derived keys and unknown names (least recently used evicted), default 10,000: a
   * quarter on probation, where every name enters, and the rest for names a peer has logged in with
   * (lru.ts ProvenLru), so that a flood of random names does not evict those.
   */
  maxCached?: number;
  /**
   * How long what is cached about a name (its key, or that it is unknown) is trusted: after that the
   * next handshake asks the lookup again (and derives again). The same for known and unknown names,
   * so that expiry does not tell them apart. Default 10 minutes; `forget()` drops a name at once.
   */
  maxAgeMs?: number;
  /**
   * How long the application's lookup may take before the handshake is refused busy (ERR_TIMEOUT; its
   * answer is then not cached). Default 5 s: a lookup that never answers must not stay pending.
   */
  lookupTimeoutMs?: number;
  /**
   * How long a first-seen unknown user is kept waiting before the handshake goes on with its dummy
   * key: by default the running median of real derivations (starting at 100 ms), so that whether a
   * name exists does not show in the timing. Cached known users answer at once, and so does an
   * unknown name seen recently, without a second call to the application's lookup.
   */
  unknownDelayMs?: number;
  /**
   * Lookups pending at once (derivations and unknown names' delays, each outliving the connection
   * that asked: see PasswordKeyStore) before new ones are refused with ERR_BUSY. Default: what the
   * pool holds (its maxQueue plus its threads). The server also bounds each source's lookups under way
   * (lookup-gate.ts, cached or not), so that one stranger cannot fill them.
   */
  maxPending?: number;
}

/** What is cached about a name: its key and verifier, or that the lookup does not know it (no psk). */
interface CachedName {
  psk: Uint8Array | undefined;
  verifier: v3.Verifier | undefined;
  /** When it was cached (performance.now()). */
  at: number;
}

/**
 * Keys derived on first use from a password lookup: once per user however many connect at the same
 * moment (single flight), cached in a bounded LRU, and run in the pool. No PBKDF2 runs for a username
 * the lookup does not know.
 *
 * A derivation is never cancelled, even when every connection that asked for it has gone: it runs to
 * its end and its key is cached, and an unknown name's delay likewise runs out and marks the name
 * seen. Were an abandoned derivation dropped, a stranger could name a known user and hang up, over
 * and over, each time costing a full PBKDF2 on a pool thread (the pool's gate lets a running task end
 * and drops only its result), and a second probe of a known name would cost a derivation where an
 * unknown name's costs nothing, which tells the two apart (docs/PROTOCOL.md, "Uniform failure": only
 * the first probe of a name may differ). Hanging up now costs the server what waiting would have, once
 * per name while cached; what is pending is bounded (maxPending).
 *
 * Known and unknown names enter one LRU, on probation, and share one maximum age, so that nothing an
 * attacker can do to the cache (flood it with random names, wait) makes a name probed before answer
 * differently for known and unknown names: both become first probes again together. A known name
 * leaves probation only once a peer has proven its key (confirmed(), from the server), which a
 * stranger cannot do: a flood then evicts no name a device logs in with (lru.ts ProvenLru).
 */
export class PasswordKeyStore implements KeyStore {
  private readonly opts: PasswordKeyStoreOptions;
  private readonly names: ProvenLru<CachedName>;
  private readonly maxAgeMs: number;
  /** Lookups not yet answered, known names' derivations and unknown names' delays alike. */
  private readonly inflight = new Map<string, Promise<NameAnswer>>();
  readonly maxPending: number;
  private readonly lookupTimeoutMs: number;
  /** Recent derivation times (ms), for the delay an unknown first-seen user is given. */
  private readonly recentDerivations: number[] = [];
  derivations = 0;

  constructor(opts: PasswordKeyStoreOptions) {
    this.opts = opts;
    this.names = new ProvenLru(opts.maxCached ?? DEFAULT_MAX_CACHED_KEYS);
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_PASSWORD_CACHE_MAX_AGE_MS;
    this.maxPending = opts.maxPending ?? defaultMaxPending(opts.pool);
    this.lookupTimeoutMs = opts.lookupTimeoutMs ?? DEFAULT_PASSWORD_LOOKUP_TIMEOUT_MS;
  }

  /**
   * The user's key, from the cache or derived; undefined, at once, for a name recently found unknown
   * (as a cached key answers at once, without asking the application's lookup again: a database
   * query's time would otherwise tell a repeat probe of an unknown name from one of a known name).
   * The connection's `signal` is not listened to: what a connection started finishes without it (see
   * the class comment), and its late answer is dropped by the handshake. `admit` is asked before a
   * lookup is started (not for a cached or pending name), and its place given back when it is over.
   */
  lookup(username: string, _signal?: AbortSignal, admit?: LookupAdmit): Uint8Array | Promise<Uint8Array | undefined> | undefined {
    const a = this.answer(username, admit);
    return a instanceof Promise ? a.then((e) => e.psk) : a.psk;
  }

  /**
   * The PSK and, for v3, the verifier derived with it, from the same answer (and cached beside it): no
   * derivation per handshake.
   */
  lookupCredential(username: string, _signal?: AbortSignal, admit?: LookupAdmit): Credential | Promise<Credential | undefined> | undefined {
    const a = this.answer(username, admit);
    return a instanceof Promise ? a.then(credentialOf) : credentialOf(a);
  }

  /** What is known of `username`: cached, pending, or a lookup started now (or ERR_BUSY, at once). */
  private answer(username: string, admit: LookupAdmit | undefined): NameAnswer | Promise<NameAnswer> {
    const hit = this.cached(username);
    if (hit) return hit;
    const pending = this.inflight.get(username);
    if (pending) return pending;
    // Refuse synchronously, before the server has sent anything, when the pool cannot take more, or
    // when as many lookups are pending as it could hold (unknown names' delays take no thread, and are
    // bounded here as known names' derivations are there, before either is told apart), or when the
    // server says the asking source has its share pending.
    if (this.opts.pool?.saturated || this.inflight.size >= this.maxPending) throw new NstpError("ERR_BUSY", "key derivation queue is full");
    const done = admit?.();
    if (admit && !done) throw sourceAtLookupCap();
    return this.start(username, done);
  }

  /** A peer proved its key for `username`: its key leaves probation, out of a flood's reach. */
  confirmed(username: string): void {
    this.names.promote(username, (e) => e.psk !== undefined);
  }

  /**
   * Forgets what is cached about `username` (its key and verifier, or that it is unknown), and makes
   * a lookup already under way for it not cache its answer: call it when the application adds a
   * user or changes a password, so the next handshake asks the lookup again. Open sessions are not
   * touched.
   */
  forget(username: string): void {
    this.names.delete(username);
    // The lookup under way, if any, no longer caches its answer (start(): it is not inflight's).
    this.inflight.delete(username);
  }

  /** Lookups pending: derivations and unknown names' delays not yet over. */
  get pending(): number {
    return this.inflight.size;
  }

  /** Names cached, known and unknown. */
  get cachedNames(): number {
    return this.names.size;
  }

  /**
   * A lookup's least hold at the server's gate (KeyStore.lookupHoldMs): what an uncached lookup takes,
   * an unknown name's delay, which is a derivation's median time (a known name's miss), at most twice
   * the fastest recent derivation or MAX_PASSWORD_LOOKUP_HOLD_MS, whichever is more (slower hosts,
   * the noble backend: their idle derivation is the measure). The median counts the pool's queue, so in a reconnect storm it climbs
   * to seconds, and every cached login from a source not proven would hold a place that long: 65
   * places on 2 cores would let a fleet back at a few dozen logins a second (attacker review, session
   * 8 round 2). Past the cap a miss holds its place longer than a hit: the timing a loaded server
   * shows on a first probe anyway.
   */
  get lookupHoldMs(): number {
    // A delay the operator set is taken as it is; the measured median is capped at twice the fastest
    // recent derivation (what one takes on this host with no queue), and never below the fixed cap.
    if (this.opts.unknownDelayMs !== undefined) return this.opts.unknownDelayMs;
    const fastest = this.recentDerivations.length ? Math.min(...this.recentDerivations) : 0;
    return Math.min(this.unknownDelayMs, Math.max(MAX_PASSWORD_LOOKUP_HOLD_MS, 2 * fastest));
  }

  /** What a first-seen unknown user waits: the configured delay, or the median recent derivation. */
  get unknownDelayMs(): number {
    if (this.opts.unknownDelayMs !== undefined) return this.opts.unknownDelayMs;
    if (!this.recentDerivations.length) return 100;
    const sorted = [...this.recentDerivations].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  /** The cache's entry for `username` while younger than maxAgeMs; an older one is dropped. */
  private cached(username: string): CachedName | undefined {
    const e = this.names.get(username);
    if (e && performance.now() - e.at > this.maxAgeMs) {
      this.names.delete(username);
      return undefined;
    }
    return e;
  }

  private recordDerivation(ms: number): void {
    this.recentDerivations.push(ms);
    if (this.recentDerivations.length > 32) this.recentDerivations.shift();
  }

  /**
   * A cold known user costs a derivation; an unknown one costs none (no PBKDF2 for strangers), so the
   * first attempt on an unknown name is made to wait as long as a derivation would, on a timer that
   * uses no CPU. The name is marked seen when the wait is over, as a known name's key is cached when
   * its derivation is: then later attempts answer at once, like a cached key, and a probe abandoned
   * early leaves both in the same state (pending, then seen or cached).
   */
  private async unknownDelay(): Promise<void> {
    const ms = this.unknownDelayMs;
    if (ms > 0) await new Promise<void>((resolve) => setTimeout(resolve, ms));
  }

  private start(username: string, done: (() => void) | undefined): Promise<NameAnswer> {
    // Begun in a microtask, so that it is in `inflight` before any of it runs (a lookup that throws at
    // once still ends here, and its entry goes). It caches its answer only while it is still the
    // name's lookup: forget() (or a later lookup) took its place, and the answer may predate the
    // change forget() announced.
    const current = () => this.inflight.get(username) === promise;
    const promise: Promise<NameAnswer> = Promise.resolve()
      .then(() => this.resolve(username, current))
      .finally(() => {
        if (current()) this.inflight.delete(username);
        done?.();
      });
    this.inflight.set(username, promise);
    return promise;
  }

  /** The application's answer, within lookupTimeoutMs (ERR_TIMEOUT: a hung lookup must not stay pending). */
  private async askApplication(username: string): Promise<string | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NstpError("ERR_TIMEOUT", "password lookup timed out")), this.lookupTimeoutMs);
    });
    try {
      return await Promise.race([this.opts.lookup(username), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Asks the application, then derives (or waits as long, for an unknown name), then caches. */
  private async resolve(username: string, current: () => boolean): Promise<NameAnswer> {
    const password = await this.askApplication(username);
    // Checked again for every name, known or not, right before the derivation is handed to the pool
    // (synchronously, so the pool cannot fill in between): had the pool filled during the application's
    // lookup, only a known name would be refused (ERR_BUSY, the busy signal) and an unknown one go on
    // to its silent close, which tells the two apart on a first probe (the review of session 5).
    if (this.opts.pool?.saturated) throw new NstpError("ERR_BUSY", "key derivation queue is full");
    let answer: NameAnswer = { psk: undefined, verifier: undefined };
    if (password === undefined) {
      await this.unknownDelay();
    } else {
      this.derivations++;
      const started = Date.now();
      const salt = pskSalt(this.opts.deviceSalt, utf8(username));
      const pw = utf8(password);
      const psk = this.opts.pool
        ? await this.opts.pool.pbkdf2(pw, salt, PBKDF2_ITERATIONS, PSK_SIZE)
        : await this.opts.crypto.pbkdf2Sha256(pw, salt, PBKDF2_ITERATIONS, PSK_SIZE);
      this.recordDerivation(Date.now() - started);
      answer = { psk, verifier: v3.verifierFromPsk(this.opts.crypto, psk, this.opts.deviceSalt, utf8(username)) };
    }
    if (current()) this.names.set(username, { ...answer, at: performance.now() });
    return answer;
  }
}

/** A name's PSK and the v3 verifier derived with it (both absent: unknown). */
type NameAnswer = Omit<CachedName, "at">;

function credentialOf(a: NameAnswer): Credential | undefined {
  return a.psk && { psk: a.psk, verifier: a.verifier };
}

/**
 * As many lookups may be pending as the pool can hold derivations (its queue and one on each thread:
 * more are refused there anyway); without a pool, as a pool's default would hold on this machine
 * (CryptoPoolOptions.maxQueue: 64 per thread).
 */
function defaultMaxPending(pool: CryptoPool | undefined): number {
  if (pool) return pool.maxQueue + pool.threads;
  const threads = availableParallelism();
  return 64 * threads + threads;
}
