#!/usr/bin/env node
/**
 * bun run users -- add NAME --file FILE [--device-salt HEX] [--v3-only]   (password from a prompt, or stdin)
 * bun run users -- migrate [--v3-only] --file FILE
 * bun run users -- remove NAME --file FILE
 * bun run users -- list --file FILE
 * With --file users.db (or sqlite:PATH) or --file postgres://...: add, remove, disable, enable, list,
 * migrate, import FILE.json and export [FILE.json] (written 0600), one transaction each (stores/users-db-cli.ts).
 *
 * A record holds the v3 verifier (w0, L) and, unless --v3-only, the PSK legacy and v2 need
 * (users-records.ts); never a password. `migrate` adds verifiers to PSK records, and with --v3-only
 * drops every PSK: those users can then use v3 only. A store this command creates gets a random
 * 16-byte device salt unless --device-salt is given; the salt is recorded in it (the JSON file's
 * "deviceSalt", nstp_meta in a database) and checked by the server and by later commands.
 * The file is written with mode 0600 and replaced atomically (users-file.ts: a random temporary name
 * created exclusively beside it, fsync, rename, fsync of the directory), each read-modify-write under
 * FILE.lock so that concurrent writers never undo each other's changes.
 */
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fromHex } from "@nstp/core";
import { USERS_FILE_FORMAT, type UsersFile } from "./credentials.ts";
import { storeKind } from "./stores/schema.ts";
import { DB_COMMANDS, announceNewStore, deriveUserPsk, runDbCommand } from "./stores/users-db-cli.ts";
import { checkDeviceSalt, chooseDeviceSalt, recordsFromUsersFile, recordsToUsersFile } from "./stores/users-db.ts";
import { withUsersFileLock, writeFileAtomic } from "./users-file.ts";
import { migrateRecord, recordFromPsk, usersFileDeviceSalt } from "./users-records.ts";

const USAGE = `usage: users add NAME [--v3-only] | users migrate [--v3-only] | users remove NAME | users list
         --file FILE.json [--device-salt HEX]
       users ${DB_COMMANDS} --file users.db|sqlite:PATH|postgres://... [--device-salt HEX] [--v3-only]
A new store gets a random 16-byte device salt unless --device-salt is given; the server needs it.`;

/** The users file as it is now (an empty one if there is none), and the device salt it records. */
function readUsersFile(path: string): { text: string; deviceSalt: Uint8Array | undefined } {
  const text = existsSync(path) ? readFileSync(path, "utf8") : JSON.stringify({ format: USERS_FILE_FORMAT, users: {} });
  return { text, deviceSalt: usersFileDeviceSalt(JSON.parse(text) as UsersFile) };
}

async function runFileCommand(path: string, command: string, name: string | undefined, given: Uint8Array | undefined, v3Only: boolean): Promise<void> {
  if (!["add", "remove", "list", "migrate"].includes(command)) throw new Error(USAGE);
  if (command !== "list" && command !== "migrate" && !name) throw new Error(`${command} needs a user name`);
  const { deviceSalt, created } = chooseDeviceSalt(readUsersFile(path).deviceSalt, given, path);
  if (command === "list") {
    for (const user of recordsFromUsersFile(readUsersFile(path).text, deviceSalt).map((r) => r.username).sort()) console.log(user);
    return;
  }
  // The password is read and derived before the file is locked: the read-modify-write below is short,
  // so a change another writer made meanwhile (a removal) is never written back over.
  const added = command === "add" ? recordFromPsk(name!, await deriveUserPsk(name!, deviceSalt), deviceSalt, { v3Only }) : undefined;
  let size = 0;
  await withUsersFileLock(path, () => {
    const now = readUsersFile(path);
    // A file created by another writer while the password was typed may hold another random salt.
    if (now.deviceSalt) checkDeviceSalt(now.deviceSalt, deviceSalt, path);
    // Every record is validated (salt, iterations, sizes) before we touch the file.
    const records = new Map(recordsFromUsersFile(now.text, deviceSalt).map((r) => [r.username, r]));
    if (command === "migrate") for (const [user, r] of records) records.set(user, migrateRecord(r, deviceSalt, { v3Only }));
    else if (added) records.set(name!, added);
    else if (!records.delete(name!)) throw new Error(`no user "${name}" in ${path}`);
    size = records.size;
    writeFileAtomic(path, JSON.stringify(recordsToUsersFile([...records.values()], deviceSalt), null, 2) + "\n");
  });
  if (created) announceNewStore(path, deviceSalt);
  console.error(
    command === "migrate" ? `migrated ${size} users in ${path}${v3Only ? " to v3 only (PSKs removed)" : " (v3 verifiers added)"}`
    : added ? `${name} saved to ${path}${v3Only ? " (v3 only)" : ""}`
    : `removed ${name}`,
  );
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      file: { type: "string" },
      "device-salt": { type: "string" },
      "v3-only": { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  const [command, name] = positionals;
  if (values.help || !command || !values.file) {
    console.log(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const given = values["device-salt"] === undefined ? undefined : fromHex(values["device-salt"]);
  if (given && given.length === 0) throw new Error("--device-salt must not be empty");
  if (storeKind(values.file).kind !== "json") return runDbCommand(values.file, command, name, given, { v3Only: values["v3-only"] });
  return runFileCommand(values.file, command, name, given, values["v3-only"]!);
}

main().catch((e: unknown) => {
  console.error(`users: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
