/**
 * One small interface over the two runtimes' built-in SQLite: `bun:sqlite` under Bun and `node:sqlite`
 * under Node 24. Both are synchronous and return BLOBs as Uint8Array; only the names differ.
 */
import { detectRuntime } from "@nstp/core/node";
import { createPrivateFile } from "../users-file.ts";

export type SqlValue = string | number | bigint | Uint8Array | null;
export type Row = Record<string, SqlValue>;

export interface SqliteDb {
  /** Runs statements with no parameters and no result (schema, pragmas). */
  exec(sql: string): void;
  all(sql: string, ...params: SqlValue[]): Row[];
  get(sql: string, ...params: SqlValue[]): Row | undefined;
  run(sql: string, ...params: SqlValue[]): { changes: number };
  /** Runs `fn` in one transaction (BEGIN IMMEDIATE: writers queue instead of failing mid-way). */
  transaction<T>(fn: () => T): T;
  close(): void;
}

interface Statement {
  all(...params: SqlValue[]): unknown[];
  get(...params: SqlValue[]): unknown;
  run(...params: SqlValue[]): { changes: number | bigint };
}

/**
 * Opens (creating if `create`, mode 0600: createPrivateFile) a database file; statements are
 * prepared once and kept.
 */
export async function openSqlite(path: string, opts: { create: boolean; busyTimeoutMs?: number }): Promise<SqliteDb> {
  if (opts.create) createPrivateFile(path);
  let prepare: (sql: string) => Statement;
  let exec: (sql: string) => void;
  let close: () => void;
  if (detectRuntime() === "bun") {
    const { Database } = await import("bun:sqlite");
    const db = new Database(path, { create: opts.create, readwrite: true, strict: true });
    prepare = (sql) => db.query(sql) as unknown as Statement;
    exec = (sql) => db.exec(sql);
    close = () => db.close();
  } else {
    const { DatabaseSync } = await import("node:sqlite");
    const { existsSync } = await import("node:fs");
    if (!opts.create && !existsSync(path)) throw new Error(`no database at ${path}`);
    const db = new DatabaseSync(path);
    prepare = (sql) => db.prepare(sql) as unknown as Statement;
    exec = (sql) => db.exec(sql);
    close = () => db.close();
  }
  exec(`PRAGMA busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 5000)}`);
  const cache = new Map<string, Statement>();
  const stmt = (sql: string) => {
    let s = cache.get(sql);
    if (!s) cache.set(sql, (s = prepare(sql)));
    return s;
  };
  return {
    exec,
    all: (sql, ...p) => stmt(sql).all(...p) as Row[],
    get: (sql, ...p) => (stmt(sql).get(...p) ?? undefined) as Row | undefined,
    run: (sql, ...p) => ({ changes: Number(stmt(sql).run(...p).changes) }),
    transaction(fn) {
      exec("BEGIN IMMEDIATE");
      try {
        const out = fn();
        exec("COMMIT");
        return out;
      } catch (e) {
        exec("ROLLBACK");
        throw e;
      }
    },
    close,
  };
}
