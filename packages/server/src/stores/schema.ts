/**
 * The credential tables, the same in SQLite and PostgreSQL (types spelled per engine):
 *
 *   nstp_users(username BLOB PRIMARY KEY, psk BLOB NULL, w0 BLOB NULL, l BLOB NULL,
 *              disabled INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL, updated_at INTEGER NOT NULL)
 *   nstp_removed(username BLOB PRIMARY KEY, version INTEGER NOT NULL)
 *   nstp_meta(key TEXT PRIMARY KEY, value NOT NULL)
 *
 * username is the UTF-8 bytes the handshake carries. `version` is a store-wide change counter
 * (nstp_meta 'version'): each change takes the next value, so a server finds what changed since it
 * last looked with one indexed range query. A removal deletes the row and leaves a tombstone in
 * nstp_removed with its version (re-adding the user deletes the tombstone), so that removals are found
 * the same way. nstp_meta also keeps the device salt the PSKs were derived with, so that a server
 * started with another --device-salt refuses the store instead of failing every handshake.
 *
 * PostgreSQL only: nstp_guesses(username, tokens, at_ms) is the per-user guessing budget every host
 * shares (guess-budget.ts), the one table servers write; it holds no credential. Its index on at_ms
 * serves the pruning of refilled buckets and the start-up read of the recent ones.
 *
 * Every statement is IF NOT EXISTS and `bun run users` runs them all on each open (under the writer
 * lock): an index or table added here reaches an existing database at its next command.
 */
export const SCHEMA_VERSION = 1;

/** The tables in one engine's spelling of the types (the CHECKs bound every BLOB to its size). */
function tables(t: { blob: string; int: string; flag: string; length: string; meta: string; suffix: string }): string {
  return `
CREATE TABLE IF NOT EXISTS nstp_users (
  username ${t.blob} PRIMARY KEY CHECK (${t.length}(username) BETWEEN 1 AND 255),
  psk ${t.blob} NULL CHECK (psk IS NULL OR ${t.length}(psk) = 32),
  w0 ${t.blob} NULL CHECK (w0 IS NULL OR ${t.length}(w0) = 32),
  l ${t.blob} NULL CHECK (l IS NULL OR ${t.length}(l) = 65),
  disabled ${t.flag} NOT NULL DEFAULT 0,
  version ${t.int} NOT NULL,
  updated_at ${t.int} NOT NULL
)${t.suffix};
CREATE INDEX IF NOT EXISTS nstp_users_version ON nstp_users (version);
CREATE TABLE IF NOT EXISTS nstp_removed (username ${t.blob} PRIMARY KEY, version ${t.int} NOT NULL)${t.suffix};
CREATE INDEX IF NOT EXISTS nstp_removed_version ON nstp_removed (version);
CREATE TABLE IF NOT EXISTS nstp_meta (key TEXT PRIMARY KEY, value${t.meta} NOT NULL)${t.suffix};
`;
}

export const SQLITE_SCHEMA = tables({ blob: "BLOB", int: "INTEGER", flag: "INTEGER", length: "length", meta: "", suffix: " WITHOUT ROWID" });

export const POSTGRES_SCHEMA =
  tables({ blob: "BYTEA", int: "BIGINT", flag: "SMALLINT", length: "octet_length", meta: " BYTEA", suffix: "" }) +
  `CREATE SEQUENCE IF NOT EXISTS nstp_version;
CREATE TABLE IF NOT EXISTS nstp_guesses (username BYTEA PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, at_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS nstp_guesses_at_ms ON nstp_guesses (at_ms);
`;

/** How a --users value names a store: a JSON users file, a SQLite database, or PostgreSQL. */
export function storeKind(spec: string): { kind: "json" | "sqlite" | "postgres"; location: string } {
  if (/^postgres(ql)?:\/\//i.test(spec)) return { kind: "postgres", location: spec };
  if (spec.startsWith("sqlite:")) return { kind: "sqlite", location: spec.slice("sqlite:".length) };
  if (/\.(db|sqlite|sqlite3)$/i.test(spec)) return { kind: "sqlite", location: spec };
  return { kind: "json", location: spec };
}
