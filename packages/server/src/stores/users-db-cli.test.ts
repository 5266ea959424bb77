// `bun run users -- import FILE.json` into a database: every imported PSK record carries the v3
// verifier migrate would give it, so the server never derives one per handshake for those users.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { legacy, utf8, v3 } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { SqliteUsersDb } from "./sqlite-store.ts";
import { runDbCommand } from "./users-db-cli.ts";
import { recordsToUsersFile } from "./users-db.ts";

const deviceSalt = legacy.DEMO_DEVICE_SALT;
const key = (n: number) => new Uint8Array(32).fill(n);
const verifier = (name: string, psk: Uint8Array) => v3.verifierFromPsk(nativeBackend, psk, deviceSalt, utf8(name));

for (const v3Only of [false, true]) {
  test(`import${v3Only ? " --v3-only" : ""} computes the v3 verifier of every PSK record${v3Only ? " and leaves the PSK out" : ""}; disabled flags and verifier-only records kept`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "nstp-import-"));
    try {
      const path = join(dir, "users.db");
      const file = join(dir, "users.json");
      const carol = verifier("carol", key(9));
      writeFileSync(file, JSON.stringify(recordsToUsersFile([
        { username: "alice", psk: key(1) },
        { username: "bob", psk: key(2), disabled: true },
        { username: "carol", w0: carol.w0, L: carol.L },
      ], deviceSalt)));
      await runDbCommand(path, "import", file, deviceSalt, { v3Only });
      const db = await SqliteUsersDb.open(path);
      try {
        const rows = new Map((await db.list()).map((r) => [r.username, r]));
        for (const [name, psk] of [["alice", key(1)], ["bob", key(2)]] as const) {
          const v = verifier(name, psk);
          const r = rows.get(name)!;
          assert.deepEqual([r.w0, r.L], [v.w0, v.L], `${name}'s verifier`);
          assert.deepEqual(r.psk, v3Only ? undefined : psk, `${name}'s PSK`);
        }
        assert.equal(rows.get("bob")!.disabled, true);
        assert.deepEqual([rows.get("carol")!.psk, rows.get("carol")!.w0, rows.get("carol")!.L], [undefined, carol.w0, carol.L]);
      } finally {
        await db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
