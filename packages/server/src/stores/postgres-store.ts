/**
 * Credentials in PostgreSQL, shared by several hosts (`--users postgres://...`), with the `postgres`
 * driver (one code path under Bun and Node). The tables are SQLite's (schema.ts). Writers serialize
 * on an advisory lock, take the next version from a sequence and NOTIFY the channel in the same
 * transaction, so a version commits only after every smaller one: each server LISTENs, and on a
 * notification (or every `pollMs`, and on every reconnection) reads the rows whose version is above
 * the last it saw, in one statement (one snapshot), drops them from its cache and announces users
 * removed, disabled or re-keyed (onUserRemoved), whose sessions the server then ends.
 *
 * A database that is slow or down never stalls the event loop (every query is asynchronous) nor ends
 * a session: a lookup that misses the cache fails the handshake after `lookupTimeoutMs` (ERR_TIMEOUT,
 * not counted against the client's guessing budget), cached records keep serving, and the store's
 * health is logged on each change and exported (nstp_store_up).
 */
import postgres from "postgres";
import { type Credential, type Logger, NstpError, utf8 } from "@nstp/core";
import { DEFAULT_LOOKUP_HOLD_MS, type LookupAdmit, sourceAtLookupCap } from "../credentials.ts";
import { silentLogger } from "@nstp/core/node";
import { type CredentialRecord, type CredentialStore, RecordCache, type RecordInput, RemovalListeners, type StoreHealth, checkRecord, credentialOf, endsSessions, pskOf } from "./records.ts";
import { POSTGRES_SCHEMA, SCHEMA_VERSION } from "./schema.ts";
import { type UsersDb, checkDeviceSalt, chooseDeviceSalt, rowToRecord } from "./users-db.ts";
import { type GuessBudgetOptions, PostgresGuessBudget } from "./guess-budget.ts";

/** The LISTEN/NOTIFY channel; the payload is the change's version. */
export const CHANNEL = "nstp_users";
/** pg_advisory_xact_lock key serializing writers ("nstp" in ASCII). */
const WRITER_LOCK = 0x6e737470;

type Sql = postgres.Sql;

function connectPg(url: string, max: number): Sql {
  return postgres(url, {
    max,
    connect_timeout: 5,
    idle_timeout: 0,
    onnotice: () => {},
    connection: { application_name: "nstp" },
  });
}

/**
 * `p`, or ERR_TIMEOUT after `ms`, or ERR_CLOSED once `signal` aborts: the waiter is released either
 * way, whatever becomes of `p` (a query already sent runs to its end).
 */
function timeout<T>(p: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NstpError("ERR_TIMEOUT", `credential store: ${what} took more than ${ms} ms`)), ms);
    onAbort = () => reject(new NstpError("ERR_CLOSED", `credential store: ${what} was abandoned by its connection`));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([p, t]).finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort!);
  });
}

/** Connections in the server's pool to the database. */
const POOL_CONNECTIONS = 4;
/**
 * Lookups under way that missed the cache, at most, per pool connection: as many as the crypto pool
 * queues per thread (CryptoPoolOptions.maxQueue). Beyond them a lookup is refused busy at once:
 * queued in the driver behind more, it would only wait out its lookupTimeoutMs.
 */
const PENDING_PER_CONNECTION = 64;

export interface PostgresStoreOptions {
  url: string;
  deviceSalt: Uint8Array;
  /** A lookup that misses the cache fails after this (default 2,000 ms). */
  lookupTimeoutMs?: number;
  /** Catch-up and health check besides notifications (default 2,000 ms). */
  pollMs?: number;
  /** Records kept in memory (default 100,000: a quarter on probation, records.ts RecordCache). */
  maxCached?: number;
  /**
   * Lookups that missed the cache under way at once (one query each, for however many connections
   * wait on it), beyond which a lookup is refused busy (ERR_BUSY) before anything is sent. Default
   * 256: 64 per pool connection.
   */
  maxPending?: number;
  log?: Logger;
}

export class PostgresCredentialStore implements CredentialStore {
  private readonly sql: Sql;
  private readonly opts: PostgresStoreOptions;
  private readonly log: Logger;
  private readonly cache: RecordCache;
  private readonly removals = new RemovalListeners();
  private readonly inflight = new Map<string, Promise<CredentialRecord | undefined>>();
  readonly maxPending: number;
  /**
   * The server's least hold of a lookup's place (KeyStore.lookupHoldMs), a cache hit's as a miss's:
   * a miss is one indexed primary-key SELECT, about a millisecond on a local network, well within
   * this; a database slower than that is the store's ill health (nstp_store_up), and then a miss
   * holds its place longer than a hit (a timing the client must probe at the right moment to see).
   */
  readonly lookupHoldMs = DEFAULT_LOOKUP_HOLD_MS;
  private readonly timer: ReturnType<typeof setInterval>;
  private seen: number;
  /** Moves on every applied change: a lookup that straddles one does not cache what it read. */
  private generation = 0;
  private catching: Promise<void> | undefined;
  private again = false;
  private state: StoreHealth = { ok: true, cached: 0 };
  private unlisten: (() => Promise<void>) | undefined;

  private constructor(sql: Sql, opts: PostgresStoreOptions, seen: number) {
    this.sql = sql;
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.cache = new RecordCache(opts.maxCached ?? 100_000);
    this.maxPending = opts.maxPending ?? PENDING_PER_CONNECTION * POOL_CONNECTIONS;
    this.seen = seen;
    this.state.lastOkAt = Date.now();
    this.timer = setInterval(() => void this.catchUp(), opts.pollMs ?? 2000);
    this.timer.unref?.();
  }

  static async open(opts: PostgresStoreOptions): Promise<PostgresCredentialStore> {
    const sql = connectPg(opts.url, POOL_CONNECTIONS);
    try {
      // The highest version committed, not the sequence's last value: a writer may have taken a
      // version and not yet committed it, and its change must still be caught up on (else a record
      // cached meanwhile would stay stale, and its user's removal never be announced here).
      const [meta, versions] = await timeout(
        Promise.all([
          sql`SELECT value FROM nstp_meta WHERE key = 'device_salt'`,
          sql`SELECT COALESCE(GREATEST((SELECT max(version) FROM nstp_users), (SELECT max(version) FROM nstp_removed)), 0) AS v`,
        ]),
        10_000,
        "opening",
      );
      checkDeviceSalt(meta[0]?.value, opts.deviceSalt, "the PostgreSQL store");
      const seen = Number(versions[0]!.v);
      const store = new PostgresCredentialStore(sql, opts, seen);
      // onlisten runs on every (re)connection of the listening connection: catch up on what was missed.
      const sub = await sql.listen(CHANNEL, () => void store.catchUp(), () => void store.catchUp());
      store.unlisten = sub.unlisten;
      return store;
    } catch (e) {
      await sql.end({ timeout: 1 });
      throw e;
    }
  }

  lookup(username: string, signal?: AbortSignal, admit?: LookupAdmit): Uint8Array | undefined | Promise<Uint8Array | undefined> {
    const r = this.lookupRecord(username, signal, admit);
    return r instanceof Promise ? r.then(pskOf) : pskOf(r);
  }

  lookupCredential(username: string, signal?: AbortSignal, admit?: LookupAdmit): Credential | undefined | Promise<Credential | undefined> {
    const r = this.lookupRecord(username, signal, admit);
    return r instanceof Promise ? r.then(credentialOf) : credentialOf(r);
  }

  /**
   * From the cache, or one query per name however many wait on it. The queries under way are
   * bounded (maxPending), and so is each source's share of them (the server's `admit`, lookup-gate.ts),
   * both refused ERR_BUSY at once, before anything is sent; a query counts until it is over, as it
   * holds its place in the driver's queue or on a connection until then. `signal` releases its waiter:
   * a connection that has gone waits no more, and one gone before asking starts nothing.
   */
  lookupRecord(username: string, signal?: AbortSignal, admit?: LookupAdmit): CredentialRecord | undefined | Promise<CredentialRecord | undefined> {
    const hit = this.cache.get(username);
    if (hit !== undefined) return hit ?? undefined;
    if (signal?.aborted) throw new NstpError("ERR_CLOSED", "credential store: a lookup abandoned by its connection");
    let p = this.inflight.get(username);
    if (!p) {
      if (this.inflight.size >= this.maxPending) throw new NstpError("ERR_BUSY", "credential store: lookups under way at their cap");
      const admitted = admit?.();
      if (admit && !admitted) throw sourceAtLookupCap();
      let done: (() => void) | undefined = admitted && (() => (done = undefined, admitted()));
      // The source's place comes back when the query ends, or at the waiters' timeout if it has not:
      // a query that hangs (a database gone silent) keeps its place in `inflight`, this store's own
      // bound, but not the server's per-source and strangers' places, or a silent database would
      // refuse every source not proven, cached names' too (attacker review, session 8 round 2).
      const giveBack = done && setTimeout(() => done?.(), this.lookupTimeoutMs);
      if (giveBack) giveBack.unref?.();
      p = this.fetch(username).finally(() => {
        clearTimeout(giveBack);
        this.inflight.delete(username);
        done?.();
      });
      this.inflight.set(username, p);
    }
    return timeout(p, this.lookupTimeoutMs, "a lookup", signal);
  }

  private get lookupTimeoutMs(): number {
    return this.opts.lookupTimeoutMs ?? 2000;
  }

  /** A peer proved its key for `username`: its record leaves probation (records.ts RecordCache). */
  confirmed(username: string): void {
    this.cache.proven(username);
  }

  /** Lookups under way that missed the cache (one query each). */
  get pending(): number {
    return this.inflight.size;
  }

  private async fetch(username: string): Promise<CredentialRecord | undefined> {
    const generation = this.generation;
    let rows: postgres.RowList<postgres.Row[]>;
    try {
      rows = await this.sql`SELECT username, psk, w0, l, disabled, version, updated_at FROM nstp_users WHERE username = ${Buffer.from(utf8(username))}`;
    } catch (e) {
      this.down(e);
      throw new NstpError("ERR_BUSY", "credential store unavailable", { cause: e });
    }
    this.up();
    const rec = rows[0] ? rowToRecord(rows[0]) : undefined;
    if (generation === this.generation) {
      if (rec) this.cache.set(rec);
      else this.cache.setMissing(username);
    }
    return rec;
  }

  onUserRemoved(listener: (username: string) => void): () => void {
    return this.removals.add(listener);
  }

  /** The per-user guessing budget every host on this database shares (guess-budget.ts). */
  openGuessBudget(opts: GuessBudgetOptions): Promise<PostgresGuessBudget> {
    return PostgresGuessBudget.open(this.sql, { log: this.log, ...opts });
  }

  health(): StoreHealth {
    return { ...this.state, cached: this.cache.size };
  }

  /** Reads every change above the last version seen (one at a time; a request meanwhile runs once more after). */
  catchUp(): Promise<void> {
    if (this.catching) {
      this.again = true;
      return this.catching;
    }
    this.catching = (async () => {
      do {
        this.again = false;
        try {
          const rows = await timeout(
            this.sql`SELECT username, psk, w0, l, disabled, version, updated_at, false AS removed FROM nstp_users WHERE version > ${this.seen}
                     UNION ALL SELECT username, NULL, NULL, NULL, 0, version, 0, true FROM nstp_removed WHERE version > ${this.seen}`,
            this.opts.lookupTimeoutMs ?? 2000,
            "catching up",
          );
          this.up();
          if (rows.length) this.apply(rows);
        } catch (e) {
          this.down(e);
        }
      } while (this.again);
      this.catching = undefined;
    })();
    return this.catching;
  }

  private apply(rows: postgres.RowList<postgres.Row[]>): void {
    this.generation++;
    let removed = 0;
    for (const r of rows) {
      const after = rowToRecord(r);
      this.seen = Math.max(this.seen, after.version);
      const before = this.cache.get(after.username);
      this.cache.delete(after.username);
      if (r.removed) removed++;
      if (endsSessions(before, { ...after, removed: r.removed === true })) this.removals.emit(after.username);
    }
    this.log.info("credential store changed", { store: "postgres", changed: rows.length - removed, removed });
  }

  private up(): void {
    if (!this.state.ok) this.log.info("credential store available again", { store: "postgres" });
    this.state = { ok: true, cached: 0, lastOkAt: Date.now() };
  }

  private down(e: unknown): void {
    const error = e instanceof Error ? e.message : String(e);
    if (this.state.ok) this.log.warn("credential store unavailable; serving cached records", { store: "postgres", reason: error });
    this.state = { ...this.state, ok: false, error };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.unlisten?.().catch(() => {});
    await this.sql.end({ timeout: 1 });
  }
}

/** The writer `bun run users` uses on PostgreSQL: the schema on first use, a transaction per change. */
export class PostgresUsersDb implements UsersDb {
  private readonly sql: Sql;
  readonly deviceSalt: Uint8Array;
  readonly created: boolean;
  private constructor(sql: Sql, salt: { deviceSalt: Uint8Array; created: boolean }) {
    this.sql = sql;
    this.deviceSalt = salt.deviceSalt;
    this.created = salt.created;
  }

  /** Without `deviceSalt`, a new store gets a random one (chooseDeviceSalt); an existing one keeps its own. */
  static async open(url: string, deviceSalt?: Uint8Array): Promise<PostgresUsersDb> {
    const sql = connectPg(url, 1);
    try {
      const salt = await sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${WRITER_LOCK})`;
        await tx.unsafe(POSTGRES_SCHEMA);
        const stored = await tx`SELECT value FROM nstp_meta WHERE key = 'device_salt'`;
        const chosen = chooseDeviceSalt(stored.length ? new Uint8Array(stored[0]!.value as Uint8Array) : undefined, deviceSalt, "the PostgreSQL store");
        if (chosen.created) {
          await tx`INSERT INTO nstp_meta (key, value) VALUES ('schema', ${Buffer.from(String(SCHEMA_VERSION))}), ('device_salt', ${Buffer.from(chosen.deviceSalt)})`;
        }
        return chosen;
      });
      return new PostgresUsersDb(sql, salt);
    } catch (e) {
      await sql.end({ timeout: 1 });
      throw e;
    }
  }

  /** One change: writers in turn, the next version, the change, and NOTIFY, committed together. */
  private change<T>(fn: (tx: postgres.TransactionSql, version: number) => Promise<T>): Promise<T> {
    return this.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${WRITER_LOCK})`;
      const [row] = await tx`SELECT nextval('nstp_version') AS v`;
      const version = Number(row!.v);
      const out = await fn(tx, version);
      await tx`SELECT pg_notify(${CHANNEL}, ${String(version)})`;
      return out;
    }) as Promise<T>;
  }

  private async upsert(tx: postgres.TransactionSql, r: RecordInput, version: number): Promise<void> {
    checkRecord(r);
    const name = Buffer.from(utf8(r.username));
    const b = (x: Uint8Array | undefined) => (x ? Buffer.from(x) : null);
    await tx`INSERT INTO nstp_users (username, psk, w0, l, disabled, version, updated_at)
             VALUES (${name}, ${b(r.psk)}, ${b(r.w0)}, ${b(r.L)}, ${r.disabled ? 1 : 0}, ${version}, ${Date.now()})
             ON CONFLICT (username) DO UPDATE SET psk = excluded.psk, w0 = excluded.w0, l = excluded.l,
               disabled = excluded.disabled, version = excluded.version, updated_at = excluded.updated_at`;
    await tx`DELETE FROM nstp_removed WHERE username = ${name}`;
  }

  async put(r: RecordInput): Promise<void> {
    checkRecord(r);
    await this.change((tx, v) => this.upsert(tx, r, v));
  }

  async putMany(records: RecordInput[]): Promise<void> {
    records.forEach(checkRecord);
    await this.change(async (tx, v) => {
      for (const r of records) await this.upsert(tx, r, v);
    });
  }

  async remove(username: string): Promise<boolean> {
    const name = Buffer.from(utf8(username));
    return this.change(async (tx, v) => {
      const gone = await tx`DELETE FROM nstp_users WHERE username = ${name}`;
      if (gone.count === 0) return false;
      await tx`INSERT INTO nstp_removed (username, version) VALUES (${name}, ${v}) ON CONFLICT (username) DO UPDATE SET version = excluded.version`;
      return true;
    });
  }

  async setDisabled(username: string, disabled: boolean): Promise<boolean> {
    return this.change(async (tx, v) => {
      const r = await tx`UPDATE nstp_users SET disabled = ${disabled ? 1 : 0}, version = ${v}, updated_at = ${Date.now()} WHERE username = ${Buffer.from(utf8(username))}`;
      return r.count > 0;
    });
  }

  async list(): Promise<CredentialRecord[]> {
    const rows = await this.sql`SELECT username, psk, w0, l, disabled, version, updated_at FROM nstp_users ORDER BY username`;
    return rows.map(rowToRecord);
  }

  async close(): Promise<void> {
    await this.sql.end({ timeout: 1 });
  }
}
