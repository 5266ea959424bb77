#!/usr/bin/env node
/**
 * bun run users -- add NAME --file FILE [--device-salt HEX]   (password from a prompt, or stdin)
 * bun run users -- remove NAME --file FILE
 * bun run users -- list --file FILE
 * With --file users.db (or sqlite:PATH) or --file postgres://...: add, remove, disable, enable, list,
 * import FILE.json and export, one transaction each (stores/users-db-cli.ts).
 * The file holds per user the derived key, salt and iterations, never a password; it is written with
 * mode 0600 and replaced atomically (users-file.ts: a random temporary name created exclusively beside
 * it, fsync, rename, fsync of the directory).
 */
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fromHex, legacy, toHex } from "@nstp/core";
import { USERS_FILE_FORMAT, type UsersFile, parseUsersFile, userRecord } from "./credentials.ts";
import { storeKind } from "./stores/schema.ts";
import { DB_COMMANDS, deriveUserPsk, runDbCommand } from "./stores/users-db-cli.ts";
import { writeFileAtomic } from "./users-file.ts";

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
  const doc = readFile(values.file, deviceSalt);
  if (command === "list") {
    for (const user of Object.keys(doc.users).sort()) console.log(user);
    return;
  }
  if (!name) throw new Error(`${command} needs a user name`);
  if (command === "remove") {
    if (!(name in doc.users)) throw new Error(`no user "${name}" in ${values.file}`);
    delete doc.users[name];
    writeAtomic(values.file, doc);
    console.error(`removed ${name}`);
    return;
  }
  if (command !== "add") throw new Error(USAGE);
  doc.users[name] = userRecord(deviceSalt, name, await deriveUserPsk(name, deviceSalt));
  writeAtomic(values.file, doc);
  console.error(`${name} saved to ${values.file}`);
}

main().catch((e: unknown) => {
  console.error(`users: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
