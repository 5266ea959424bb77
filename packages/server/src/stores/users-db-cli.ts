/**
 * `bun run users` on a database (SQLite file or PostgreSQL URL): add, remove, disable, enable, list,
 * import a JSON users file, export one. Each command is one transaction; running servers see it
 * within a second, without SIGHUP.
 */
import { readFileSync } from "node:fs";
import { PBKDF2_ITERATIONS, PSK_SIZE, legacy, pskSalt, utf8 } from "@nstp/core";
import { readPassword } from "@nstp/core/node";
import { CryptoPool } from "@nstp/core/pool";
import { storeKind } from "./schema.ts";
import { SqliteUsersDb } from "./sqlite-store.ts";
import { type UsersDb, recordsFromUsersFile, recordsToUsersFile } from "./users-db.ts";

export const DB_COMMANDS = "add NAME | remove NAME | disable NAME | enable NAME | list | import FILE.json | export";

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

export async function openUsersDb(spec: string, deviceSalt: Uint8Array): Promise<UsersDb> {
  const { kind, location } = storeKind(spec);
  if (kind === "sqlite") return SqliteUsersDb.open(location, deviceSalt);
  if (kind === "postgres") return (await import("./postgres-store.ts")).PostgresUsersDb.open(location, deviceSalt);
  throw new Error(`${spec} is not a database`);
}

export async function runDbCommand(spec: string, command: string, arg: string | undefined, deviceSalt: Uint8Array): Promise<void> {
  const needsArg = ["add", "remove", "disable", "enable", "import"];
  if (needsArg.includes(command) && !arg) throw new Error(`${command} needs ${command === "import" ? "a file" : "a user name"}`);
  if (![...needsArg, "list", "export"].includes(command)) throw new Error(`unknown command ${command}: ${DB_COMMANDS}`);
  // Read the password (and derive) before opening the database: no transaction waits on a prompt.
  const psk = command === "add" ? await deriveUserPsk(arg!, deviceSalt) : undefined;
  const db = await openUsersDb(spec, deviceSalt);
  try {
    switch (command) {
      case "add":
        await db.put({ username: arg!, psk });
        console.error(`${arg} saved to ${spec}`);
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
      case "import": {
        const records = recordsFromUsersFile(readFileSync(arg!, "utf8"), deviceSalt);
        await db.putMany(records);
        console.error(`imported ${records.length} users into ${spec}`);
        break;
      }
      case "export":
        console.log(JSON.stringify(recordsToUsersFile(await db.list(), deviceSalt), null, 2));
        break;
    }
  } finally {
    await db.close();
  }
}
