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
 * shares (guess-budget.ts), the one table servers write; it holds no credential.
 */
export const SCHEMA_VERSION = 1;

export const SQLITE_SCHEMA = `
CREATE TABLE IF NOT EXISTS nstp_users (
  username BLOB PRIMARY KEY CHECK (length(username) BETWEEN 1 AND 255),
  psk BLOB NULL CHECK (psk IS NULL OR length(psk) = 32),
  w0 BLOB NULL CHECK (w0 IS NULL OR length(w0) = 32),
  l BLOB NULL CHECK (l IS NULL OR length(l) = 65),
  disabled INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nstp_users_version ON nstp_users (version);
CREATE TABLE IF NOT EXISTS nstp_removed (username BLOB PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nstp_removed_version ON nstp_removed (version);
CREATE TABLE IF NOT EXISTS nstp_meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;
`;

export const POSTGRES_SCHEMA = `
CREATE TABLE IF NOT EXISTS nstp_users (
  username BYTEA PRIMARY KEY CHECK (octet_length(username) BETWEEN 1 AND 255),
  psk BYTEA NULL CHECK (psk IS NULL OR octet_length(psk) = 32),
  w0 BYTEA NULL CHECK (w0 IS NULL OR octet_length(w0) = 32),
  l BYTEA NULL CHECK (l IS NULL OR octet_length(l) = 65),
  disabled SMALLINT NOT NULL DEFAULT 0,
  version BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS nstp_users_version ON nstp_users (version);
CREATE TABLE IF NOT EXISTS nstp_removed (username BYTEA PRIMARY KEY, version BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS nstp_removed_version ON nstp_removed (version);
CREATE TABLE IF NOT EXISTS nstp_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE SEQUENCE IF NOT EXISTS nstp_version;
CREATE TABLE IF NOT EXISTS nstp_guesses (username BYTEA PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, at_ms BIGINT NOT NULL);
`;

/** How a --users value names a store: a JSON users file, a SQLite database, or PostgreSQL. */
export function storeKind(spec: string): { kind: "json" | "sqlite" | "postgres"; location: string } {
  if (/^postgres(ql)?:\/\//i.test(spec)) return { kind: "postgres", location: spec };
  if (spec.startsWith("sqlite:")) return { kind: "sqlite", location: spec.slice("sqlite:".length) };
  if (/\.(db|sqlite|sqlite3)$/i.test(spec)) return { kind: "sqlite", location: spec };
  return { kind: "json", location: spec };
}
