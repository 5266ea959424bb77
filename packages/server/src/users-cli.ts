#!/usr/bin/env node
/**
 * bun run users -- add NAME --file FILE [--device-salt HEX]   (password from a prompt, or stdin)
 * bun run users -- remove NAME --file FILE
 * bun run users -- list --file FILE
 * With --file users.db (or sqlite:PATH) or --file postgres://...: add, remove, disable, enable, list,
 * import FILE.json and export, one transaction each (stores/users-db-cli.ts).
 * The file holds per user the derived key, salt and iterations, never a password; it is written with
 * mode 0600 and replaced atomically (users-file.ts: a random temporary name created exclusively beside
 * it, fsync, rename, fsync of the directory), each read-modify-write under FILE.lock so that
 * concurrent writers never undo each other's changes.
 */
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fromHex, legacy, toHex } from "@nstp/core";
import { USERS_FILE_FORMAT, type UsersFile, parseUsersFile, userRecord } from "./credentials.ts";
import { storeKind } from "./stores/schema.ts";
import { DB_COMMANDS, deriveUserPsk, runDbCommand } from "./stores/users-db-cli.ts";
import { withUsersFileLock, writeFileAtomic } from "./users-file.ts";

const USAGE = `usage: users add NAME --file FILE [--device-salt HEX] | users remove NAME --file FILE | users list --file FILE
       users ${DB_COMMANDS} --file users.db|sqlite:PATH|postgres://... [--device-salt HEX]`;

function readFile(path: string, deviceSalt: Uint8Array): UsersFile {
  if (!existsSync(path)) return { format: USERS_FILE_FORMAT, users: {} };
  const text = readFileSync(path, "utf8");
  parseUsersFile(text, deviceSalt); // validates every record before we touch the file
  return JSON.parse(text) as UsersFile;
}

function writeAtomic(path: string, doc: UsersFile): void {
  writeFileAtomic(path, JSON.stringify(doc, null, 2) + "\n");
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      file: { type: "string" },
      "device-salt": { type: "string", default: toHex(legacy.DEMO_DEVICE_SALT) },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  const [command, name] = positionals;
  if (values.help || !command || !values.file) {
    console.log(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const deviceSalt = fromHex(values["device-salt"]!);
  if (storeKind(values.file).kind !== "json") return runDbCommand(values.file, command, name, deviceSalt);
  const path = values.file;
  if (command === "list") {
    for (const user of Object.keys(readFile(path, deviceSalt).users).sort()) console.log(user);
    return;
  }
  if (!name) throw new Error(`${command} needs a user name`);
  if (command !== "remove" && command !== "add") throw new Error(USAGE);
  // The password is read and derived before the file: the read-modify-write below is short and
  // locked, so a change another writer made meanwhile (a removal) is never written back over.
  const psk = command === "add" ? await deriveUserPsk(name, deviceSalt) : undefined;
  await withUsersFileLock(path, () => {
    const doc = readFile(path, deviceSalt);
    if (!psk) {
      if (!(name in doc.users)) throw new Error(`no user "${name}" in ${path}`);
      delete doc.users[name];
    } else {
      doc.users[name] = userRecord(deviceSalt, name, psk);
    }
    writeAtomic(path, doc);
  });
  console.error(psk ? `${name} saved to ${path}` : `removed ${name}`);
}

main().catch((e: unknown) => {
  console.error(`users: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
