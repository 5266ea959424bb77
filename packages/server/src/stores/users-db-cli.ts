/**
 * `bun run users` on a database (SQLite file or PostgreSQL URL): add, remove, disable, enable, list,
 * migrate, import a JSON users file, export one. Each command is one transaction; running servers see
 * it within a second, without SIGHUP.
 */
import { readFileSync } from "node:fs";
import { PBKDF2_ITERATIONS, PSK_SIZE, legacy, pskSalt, toHex, utf8 } from "@nstp/core";
import { readPassword } from "@nstp/core/node";
import { CryptoPool } from "@nstp/core/pool";
import { type RecordOptions, migrateRecord, recordFromPsk } from "../users-records.ts";
import { storeKind } from "./schema.ts";
import { urlPasswordWarning } from "./open.ts";
import { SqliteUsersDb, sqliteFiles } from "./sqlite-store.ts";
import { type UsersDb, recordsFromUsersFile, recordsToUsersFile } from "./users-db.ts";
import { OPEN_TO_OTHERS_WARNING, openToOthers, writeFileAtomic } from "../users-file.ts";

export const DB_COMMANDS = "add NAME | remove NAME | disable NAME | enable NAME | list | migrate | import FILE.json | export [FILE.json]";

/** PBKDF2 in a worker thread (the prompt's process stays responsive), as the server's pool runs it. */
export async function deriveUserPsk(name: string, deviceSalt: Uint8Array): Promise<Uint8Array> {
  legacy.checkUsernameBytes(utf8(name));
  const password = await readPassword(`password for ${name}: `);
  if (!password) throw new Error("empty password");
  const pool = new CryptoPool({ threads: 1 });
  try {
    return await pool.pbkdf2(utf8(password), pskSalt(deviceSalt, utf8(name)), PBKDF2_ITERATIONS, PSK_SIZE);
  } finally {
    await pool.destroy();
  }
}

/** Told once, when `bun run users` has just created a store: the server must be given its salt. */
export function announceNewStore(where: string, deviceSalt: Uint8Array): void {
  const hex = toHex(deviceSalt);
  console.error(`created ${where} with device salt ${hex}: start the server with --device-salt ${hex} (clients need it too)`);
}

/** Opens (creating if need be) a store; without `deviceSalt` a new one gets 16 random bytes. */
export async function openUsersDb(spec: string, deviceSalt?: Uint8Array): Promise<UsersDb> {
  const { kind, location } = storeKind(spec);
  const urlWarning = urlPasswordWarning(spec);
  if (urlWarning) console.error(`warning: ${urlWarning}`);
  if (kind === "sqlite") {
    const db = await SqliteUsersDb.open(location, deviceSalt);
    // A store created here is 0600; one that already existed keeps its mode, which the server would
    // warn about: say so here too, where the operator writes to it (the WAL holds the newest rows).
    const open = openToOthers(sqliteFiles(location));
    if (open.length > 0) console.error(`warning: ${OPEN_TO_OTHERS_WARNING}: ${open.join(", ")}`);
    return db;
  }
  if (kind === "postgres") return (await import("./postgres-store.ts")).PostgresUsersDb.open(location, deviceSalt);
  throw new Error(`${spec} is not a database`);
}

export async function runDbCommand(spec: string, command: string, arg: string | undefined, deviceSalt: Uint8Array | undefined, opts: RecordOptions = {}): Promise<void> {
  const needsArg = ["add", "remove", "disable", "enable", "import"];
  if (needsArg.includes(command) && !arg) throw new Error(`${command} needs ${command === "import" ? "a file" : "a user name"}`);
  if (![...needsArg, "list", "migrate", "export"].includes(command)) throw new Error(`unknown command ${command}: ${DB_COMMANDS}`);
  if (command === "add") legacy.checkUsernameBytes(utf8(arg!));
  // Opening takes (or creates) the store's salt in a transaction of its own: no transaction waits on
  // the password prompt that follows.
  const db = await openUsersDb(spec, deviceSalt);
  try {
    if (db.created) announceNewStore(spec, db.deviceSalt);
    switch (command) {
      case "add":
        await db.put(recordFromPsk(arg!, await deriveUserPsk(arg!, db.deviceSalt), db.deviceSalt, opts));
        console.error(`${arg} saved to ${spec}${opts.v3Only ? " (v3 only)" : ""}`);
        break;
      case "remove":
        if (!(await db.remove(arg!))) throw new Error(`no user "${arg}" in ${spec}`);
        console.error(`removed ${arg}`);
        break;
      case "disable":
      case "enable":
        if (!(await db.setDisabled(arg!, command === "disable"))) throw new Error(`no user "${arg}" in ${spec}`);
        console.error(`${command}d ${arg}`);
        break;
      case "list":
        for (const r of await db.list()) console.log(r.disabled ? `${r.username} (disabled)` : r.username);
        break;
      case "migrate": {
        // One transaction for the whole store: servers see every record converted at once.
        const records = (await db.list()).map((r) => migrateRecord(r, db.deviceSalt, opts));
        await db.putMany(records);
        console.error(`migrated ${records.length} users in ${spec}${opts.v3Only ? " to v3 only (PSKs removed)" : " (v3 verifiers added)"}`);
        break;
      }
      case "import": {
        // Each PSK record gains its v3 verifier as migrate gives it (with --v3-only, loses the PSK):
        // a PSK-only row would have the server derive the verifier on every v3 handshake.
        const records = recordsFromUsersFile(readFileSync(arg!, "utf8"), db.deviceSalt).map((r) => migrateRecord(r, db.deviceSalt, opts));
        await db.putMany(records);
        console.error(`imported ${records.length} users into ${spec}${opts.v3Only ? " (v3 only: PSKs left out)" : " (v3 verifiers computed)"}`);
        break;
      }
      case "export": {
        // The PSKs in it are password-equivalent: to a file, mode 0600 whatever the umask, replaced
        // atomically (users-file.ts); on stdout, a shell redirect would create the file 0644.
        const records = await db.list();
        const json = JSON.stringify(recordsToUsersFile(records, db.deviceSalt), null, 2);
        if (arg !== undefined) {
          writeFileAtomic(arg, json + "\n");
          console.error(`exported ${records.length} users to ${arg} (mode 0600)`);
          break;
        }
        if (!process.stdout.isTTY) console.error("warning: the export holds password-equivalent keys; whatever stdout goes to may be readable by others: prefer export FILE.json (written 0600)");
        console.log(json);
        break;
      }
    }
  } finally {
    await db.close();
  }
}
