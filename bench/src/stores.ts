/**
 * The credential-store bench: handshake rates with users in a JSON users file, in SQLite and in
 * PostgreSQL, cold (every record read from the store) and warm (every record cached), and warm
 * handshakes through HAProxy (send-proxy-v2) beside direct ones. PostgreSQL and HAProxy are Debian's
 * packages (.ci/run installs them); a part whose package is missing is skipped and said so.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { legacy } from "@nstp/core";
import { PostgresUsersDb, type RecordInput, SqliteUsersDb, USERS_FILE_FORMAT, type UsersDb, userRecord } from "@nstp/server";
import { haproxyBinary, postgresBinDir, type RunningPostgres, startHaproxy, startPostgres } from "@nstp/testkit";
import { BENCH_PASSWORD, BENCH_USER, storeUserName, storeUserPsk } from "./users.ts";

export type StoreName = "json" | "sqlite" | "postgres";

export interface BenchStores {
  /** --users value per store available. */
  specs: Partial<Record<StoreName, string>>;
  notes: string[];
  close(): Promise<void>;
}

/** `n` store users (and the bench user) in each store that can run here. */
export async function prepareStores(n: number): Promise<BenchStores> {
  const deviceSalt = legacy.DEMO_DEVICE_SALT;
  const { utf8 } = await import("@nstp/core");
  const { nativeBackend } = await import("@nstp/core/crypto/native");
  const benchPsk = await nativeBackend.pbkdf2Sha256(utf8(BENCH_PASSWORD), legacy.pskSalt(deviceSalt, utf8(BENCH_USER)), legacy.PBKDF2_ITERATIONS, 32);
  const records: RecordInput[] = [{ username: BENCH_USER, psk: benchPsk }];
  for (let i = 0; i < n; i++) records.push({ username: storeUserName(i), psk: storeUserPsk(storeUserName(i)) });
  const dir = mkdtempSync(join(tmpdir(), "nstp-bench-stores-"));
  const specs: BenchStores["specs"] = {};
  const notes: string[] = [];
  const json = join(dir, "users.json");
  writeFileSync(json, JSON.stringify({ format: USERS_FILE_FORMAT, users: Object.fromEntries(records.map((r) => [r.username, userRecord(deviceSalt, r.username, r.psk!)])) }));
  specs.json = json;
  const fill = async (db: UsersDb) => {
    try {
      await db.putMany(records);
    } finally {
      await db.close();
    }
  };
  const sqlite = join(dir, "users.db");
  await fill(await SqliteUsersDb.open(sqlite, deviceSalt));
  specs.sqlite = sqlite;
  let pg: RunningPostgres | undefined;
  const bin = postgresBinDir();
  if (bin) {
    pg = await startPostgres(bin);
    await fill(await PostgresUsersDb.open(pg.url, deviceSalt));
    specs.postgres = pg.url;
  } else {
    notes.push("PostgreSQL not installed: its rows are missing");
  }
  return {
    specs,
    notes,
    close: async () => {
      pg?.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { haproxyBinary, startHaproxy };
