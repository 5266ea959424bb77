/** Opens the credential store a --users value names (a SQLite file or a PostgreSQL URL). */
import type { Logger } from "@nstp/core";
import type { CredentialStore } from "./records.ts";
import { storeKind } from "./schema.ts";
import { SqliteCredentialStore, sqliteFiles } from "./sqlite-store.ts";

export interface OpenStoreOptions {
  deviceSalt: Uint8Array;
  log?: Logger;
  /** Warn if a SQLite store's files are open to others (default true; see SqliteStoreOptions). */
  warnOpenToOthers?: boolean;
}

/** The local files a --users value names, whose modes matter: none for PostgreSQL. */
export function storeFiles(spec: string): string[] {
  const { kind, location } = storeKind(spec);
  return kind === "postgres" ? [] : kind === "sqlite" ? sqliteFiles(location) : [location];
}

/** For logs: the store's kind and where it is, with no password. */
export function describeStore(spec: string): string {
  const { kind, location } = storeKind(spec);
  if (kind !== "postgres") return `${kind}:${location}`;
  const u = new URL(location);
  return `postgres://${u.hostname}:${u.port || 5432}${u.pathname}`;
}

/**
 * A warning when a PostgreSQL URL carries a password, else undefined: the URL is a command-line
 * argument, which every local user can read in the process list (and the supervisor copies it into
 * every worker's). The postgres driver takes the password from PGPASSWORD when the URL has none.
 */
export function urlPasswordWarning(spec: string): string | undefined {
  const { kind, location } = storeKind(spec);
  if (kind !== "postgres") return undefined;
  let password: string;
  try {
    password = new URL(location).password;
  } catch {
    return undefined; // not a URL the driver could use either: it reports that itself
  }
  if (password === "") return undefined;
  return "the PostgreSQL URL carries a password, which other local users can read in the process list: leave it out and set PGPASSWORD instead";
}

export async function openCredentialStore(spec: string, opts: OpenStoreOptions): Promise<CredentialStore> {
  const { kind, location } = storeKind(spec);
  if (kind === "sqlite") return SqliteCredentialStore.open({ path: location, deviceSalt: opts.deviceSalt, log: opts.log, warnOpenToOthers: opts.warnOpenToOthers });
  if (kind === "postgres") return (await import("./postgres-store.ts")).PostgresCredentialStore.open({ url: location, deviceSalt: opts.deviceSalt, log: opts.log });
  throw new Error(`${spec} is a users file, not a database`);
}
