#!/usr/bin/env bun
/**
 * bun run users -- add NAME --file FILE [--device-salt HEX] [--v3-only]   (password from a prompt, or stdin)
 * bun run users -- migrate [--v3-only] --file FILE
 * bun run users -- remove NAME --file FILE
 * bun run users -- list --file FILE
 * With --file users.db (or sqlite:PATH) or --file postgres://...: add, remove, disable, enable, list,
 * migrate, import FILE.json and export, one transaction each (stores/users-db-cli.ts).
 *
 * A record holds the v3 verifier (w0, L) and, unless --v3-only, the PSK legacy and v2 need
 * (users-records.ts); never a password. `migrate` adds verifiers to PSK records, and with --v3-only
 * drops every PSK: those users can then use v3 only. A store this command creates gets a random
 * 16-byte device salt unless --device-salt is given; the salt is recorded in it (the JSON file's
 * "deviceSalt", nstp_meta in a database) and checked by the server and by later commands.
 * The file is written with mode 0600 and replaced atomically (users-file.ts: a random temporary name
 * created exclusively beside it, fsync, rename, fsync of the directory).
 */
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fromHex } from "@nstp/core";
import { USERS_FILE_FORMAT, type UsersFile } from "./credentials.ts";
import { storeKind } from "./stores/schema.ts";
import { DB_COMMANDS, announceNewStore, deriveUserPsk, runDbCommand } from "./stores/users-db-cli.ts";
import { chooseDeviceSalt, recordsFromUsersFile, recordsToUsersFile } from "./stores/users-db.ts";
import { writeFileAtomic } from "./users-file.ts";
import { migrateRecord, recordFromPsk, usersFileDeviceSalt } from "./users-records.ts";

const USAGE = `usage: users add NAME [--v3-only] | users migrate [--v3-only] | users remove NAME | users list
         --file FILE.json [--device-salt HEX]
       users ${DB_COMMANDS} --file users.db|sqlite:PATH|postgres://... [--device-salt HEX] [--v3-only]
A new store gets a random 16-byte device salt unless --device-salt is given; the server needs it.`;

async function runFileCommand(path: string, command: string, name: string | undefined, given: Uint8Array | undefined, v3Only: boolean): Promise<void> {
  if (!["add", "remove", "list", "migrate"].includes(command)) throw new Error(USAGE);
  const text = existsSync(path) ? readFileSync(path, "utf8") : JSON.stringify({ format: USERS_FILE_FORMAT, users: {} });
  const doc = JSON.parse(text) as UsersFile;
  const { deviceSalt, created } = chooseDeviceSalt(usersFileDeviceSalt(doc), given, path);
  // Every record is validated (salt, iterations, sizes) before we touch the file.
  const records = new Map(recordsFromUsersFile(text, deviceSalt).map((r) => [r.username, r]));
  if (command === "list") {
    for (const user of [...records.keys()].sort()) console.log(user);
    return;
  }
  if (command === "migrate") {
    for (const [user, r] of records) records.set(user, migrateRecord(r, deviceSalt, { v3Only }));
  } else {
    if (!name) throw new Error(`${command} needs a user name`);
    if (command === "remove" && !records.delete(name)) throw new Error(`no user "${name}" in ${path}`);
    if (command === "add") records.set(name, recordFromPsk(name, await deriveUserPsk(name, deviceSalt), deviceSalt, { v3Only }));
  }
  writeFileAtomic(path, JSON.stringify(recordsToUsersFile([...records.values()], deviceSalt), null, 2) + "\n");
  if (created) announceNewStore(path, deviceSalt);
  console.error(
    command === "migrate" ? `migrated ${records.size} users in ${path}${v3Only ? " to v3 only (PSKs removed)" : " (v3 verifiers added)"}`
    : command === "remove" ? `removed ${name}`
    : `${name} saved to ${path}${v3Only ? " (v3 only)" : ""}`,
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
