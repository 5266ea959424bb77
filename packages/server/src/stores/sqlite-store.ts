/**
 * Credentials in SQLite: the embedded default for one host (`--users users.db`). The server reads
 * only (PRAGMA query_only); `bun run users` writes, a transaction per change, in WAL mode so that
 * readers never wait for it. Every server process notices a change within `pollMs` without SIGHUP:
 * it polls PRAGMA data_version (which moves when another connection commits; no page is read) and
 * only then reads what changed since the store-wide version it last saw (schema.ts), and announces
 * each user removed, disabled or re-keyed (onUserRemoved), whose sessions the server then ends.
 */
import { type Credential, type Logger, utf8 } from "@nstp/core";
import { silentLogger } from "@nstp/core/node";
import { type CredentialRecord, type CredentialStore, RecordCache, type RecordInput, RemovalListeners, type StoreHealth, checkRecord, credentialOf, endsSessions, pskOf } from "./records.ts";
import { SCHEMA_VERSION, SQLITE_SCHEMA } from "./schema.ts";
import { type SqliteDb, openSqlite } from "./sqlite-driver.ts";
import { warnIfOpenToOthers } from "../users-file.ts";
import { type UsersDb, checkDeviceSalt, chooseDeviceSalt, rowToRecord } from "./users-db.ts";

export interface SqliteStoreOptions {
  path: string;
  deviceSalt: Uint8Array;
  /** How often to look for changes (default 250 ms: seen everywhere well within a second). */
  pollMs?: number;
  /** Records kept in memory (default 100,000: a quarter on probation, records.ts RecordCache). */
  maxCached?: number;
  log?: Logger;
  /**
   * Warn if the store's files are open to other local users (default true). The server CLI warns
   * once itself, from the supervisor when there are workers, and passes false.
   */
  warnOpenToOthers?: boolean;
}

const SELECT_USER = "SELECT username, psk, w0, l, disabled, version, updated_at FROM nstp_users WHERE username = ?";
const SELECT_VERSION = "SELECT value FROM nstp_meta WHERE key = 'version'";

function metaVersion(db: SqliteDb): number {
  return Number(db.get(SELECT_VERSION)?.value ?? 0);
}

/** A SQLite store's files: the WAL holds the newest rows until a checkpoint, so its mode matters as much as the file's. */
export function sqliteFiles(path: string): string[] {
  return [path, `${path}-wal`, `${path}-shm`];
}

export class SqliteCredentialStore implements CredentialStore {
  private readonly cache: RecordCache;
  private readonly removals = new RemovalListeners();
  private readonly timer: ReturnType<typeof setInterval>;
  private dataVersion = -1;
  private seen: number;
  private state: StoreHealth = { ok: true, cached: 0 };
  private readonly db: SqliteDb;
  private readonly opts: SqliteStoreOptions;
  /**
   * The server's least hold of a lookup's place (KeyStore.lookupHoldMs): none, as every lookup, hit or
   * miss, is answered in the same turn (a synchronous query), so nothing is ever under way.
   */
  readonly lookupHoldMs = 0;

  private constructor(db: SqliteDb, opts: SqliteStoreOptions) {
    this.db = db;
    this.opts = opts;
    this.cache = new RecordCache(opts.maxCached ?? 100_000);
    this.seen = metaVersion(db);
    this.state.lastOkAt = Date.now();
    this.timer = setInterval(() => this.poll(), opts.pollMs ?? 250);
    this.timer.unref?.();
  }

  static async open(opts: SqliteStoreOptions): Promise<SqliteCredentialStore> {
    const db = await openSqlite(opts.path, { create: false });
    try {
      db.exec("PRAGMA query_only = ON");
      const isStore = db.get("SELECT 1 AS yes FROM sqlite_master WHERE type = 'table' AND name = 'nstp_meta'");
      checkDeviceSalt(isStore ? db.get("SELECT value FROM nstp_meta WHERE key = 'device_salt'")?.value : undefined, opts.deviceSalt, opts.path);
      if (opts.warnOpenToOthers !== false) warnIfOpenToOthers(sqliteFiles(opts.path), opts.log);
      return new SqliteCredentialStore(db, opts);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  lookup(username: string): Uint8Array | undefined {
    return pskOf(this.lookupRecord(username));
  }

  lookupCredential(username: string): Credential | undefined {
    return credentialOf(this.lookupRecord(username));
  }

  lookupRecord(username: string): CredentialRecord | undefined {
    const hit = this.cache.get(username);
    if (hit !== undefined) return hit ?? undefined;
    const row = this.db.get(SELECT_USER, utf8(username));
    if (!row) {
      this.cache.setMissing(username);
      return undefined;
    }
    const rec = rowToRecord(row);
    this.cache.set(rec);
    return rec;
  }

  /** A peer proved its key for `username`: its record leaves probation (records.ts RecordCache). */
  confirmed(username: string): void {
    this.cache.proven(username);
  }

  onUserRemoved(listener: (username: string) => void): () => void {
    return this.removals.add(listener);
  }

  health(): StoreHealth {
    return { ...this.state, cached: this.cache.size };
  }

  /** Finds what changed since the last look: drops those records from the cache, announces removals. */
  poll(): void {
    try {
      const dv = Number(this.db.get("PRAGMA data_version")?.data_version);
      if (dv !== this.dataVersion) {
        this.dataVersion = dv;
        const v = metaVersion(this.db);
        if (v !== this.seen) this.applyChanges(v);
      }
      this.state = { ok: true, cached: 0, lastOkAt: Date.now() };
    } catch (e) {
      if (this.state.ok) this.opts.log?.warn("credential store unavailable; serving cached records", { store: "sqlite", reason: (e as Error).message });
      this.state = { ...this.state, ok: false, error: (e as Error).message };
    }
  }

  private applyChanges(v: number): void {
    const changed = this.db.all("SELECT username, psk, w0, l, disabled, version, updated_at FROM nstp_users WHERE version > ?", this.seen);
    const removed = this.db.all("SELECT username FROM nstp_removed WHERE version > ?", this.seen);
    this.seen = v;
    for (const row of changed) {
      const after = rowToRecord(row);
      const before = this.cache.get(after.username);
      this.cache.delete(after.username);
      if (endsSessions(before, { ...after, removed: false })) this.removals.emit(after.username);
    }
    for (const r of removed) {
      const name = new TextDecoder().decode(r.username as Uint8Array);
      this.cache.delete(name);
      this.removals.emit(name);
    }
    (this.opts.log ?? silentLogger).info("credential store changed", { store: "sqlite", changed: changed.length, removed: removed.length });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.db.close();
  }
}

/** The writer `bun run users` uses on a SQLite file: schema and WAL on creation, a transaction per change. */
export class SqliteUsersDb implements UsersDb {
  private readonly db: SqliteDb;
  readonly deviceSalt: Uint8Array;
  readonly created: boolean;
  private constructor(db: SqliteDb, salt: { deviceSalt: Uint8Array; created: boolean }) {
    this.db = db;
    this.deviceSalt = salt.deviceSalt;
    this.created = salt.created;
  }

  /** Without `deviceSalt`, a new store gets a random one (chooseDeviceSalt); an existing one keeps its own. */
  static async open(path: string, deviceSalt?: Uint8Array): Promise<SqliteUsersDb> {
    const db = await openSqlite(path, { create: true });
    try {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(SQLITE_SCHEMA);
      const salt = db.transaction(() => {
        const stored = db.get("SELECT value FROM nstp_meta WHERE key = 'device_salt'")?.value;
        const chosen = chooseDeviceSalt(stored == null ? undefined : new Uint8Array(stored as Uint8Array), deviceSalt, path);
        if (chosen.created) {
          db.run("INSERT INTO nstp_meta (key, value) VALUES ('schema', ?), ('device_salt', ?), ('version', 0)", SCHEMA_VERSION, chosen.deviceSalt);
        }
        return chosen;
      });
      return new SqliteUsersDb(db, salt);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  private next(): number {
    return Number(this.db.get("UPDATE nstp_meta SET value = value + 1 WHERE key = 'version' RETURNING value")!.value);
  }

  private upsert(r: RecordInput): void {
    checkRecord(r);
    const name = utf8(r.username);
    this.db.run(
      `INSERT INTO nstp_users (username, psk, w0, l, disabled, version, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (username) DO UPDATE SET psk = excluded.psk, w0 = excluded.w0, l = excluded.l,
         disabled = excluded.disabled, version = excluded.version, updated_at = excluded.updated_at`,
      name, r.psk ?? null, r.w0 ?? null, r.L ?? null, r.disabled ? 1 : 0, this.next(), Date.now(),
    );
    this.db.run("DELETE FROM nstp_removed WHERE username = ?", name);
  }

  async put(r: RecordInput): Promise<void> {
    this.db.transaction(() => this.upsert(r));
  }

  async putMany(records: RecordInput[]): Promise<void> {
    this.db.transaction(() => records.forEach((r) => this.upsert(r)));
  }

  async remove(username: string): Promise<boolean> {
    const name = utf8(username);
    return this.db.transaction(() => {
      if (this.db.run("DELETE FROM nstp_users WHERE username = ?", name).changes === 0) return false;
      this.db.run("INSERT OR REPLACE INTO nstp_removed (username, version) VALUES (?, ?)", name, this.next());
      return true;
    });
  }

  async setDisabled(username: string, disabled: boolean): Promise<boolean> {
    return this.db.transaction(() => {
      const v = this.next();
      return this.db.run("UPDATE nstp_users SET disabled = ?, version = ?, updated_at = ? WHERE username = ?", disabled ? 1 : 0, v, Date.now(), utf8(username)).changes > 0;
    });
  }

  async list(): Promise<CredentialRecord[]> {
    return this.db.all("SELECT username, psk, w0, l, disabled, version, updated_at FROM nstp_users ORDER BY username").map(rowToRecord);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
