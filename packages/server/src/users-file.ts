/**
 * Replacing the users file safely: its keys are password-equivalent (docs/PROTOCOL.md, "Users file").
 *
 * The new contents go to a temporary file with a random name, created exclusively ('wx': O_CREAT |
 * O_EXCL, so a file or symlink planted at that name is never followed or reused) in the same directory
 * (so the rename stays on one filesystem and is atomic), with mode 0600 set on the open descriptor
 * whatever the umask; it is fsynced, renamed over the file (whose old mode, say 0644, goes with the old
 * inode), and the directory is fsynced so the rename itself survives a crash.
 */
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";

export const USERS_FILE_MODE = 0o600;
/** How long a writer waits for another to finish its change before giving up. */
export const USERS_FILE_LOCK_WAIT_MS = 10_000;
const LOCK_RETRY_MS = 25;

/**
 * Runs one read-modify-write of the users file while holding `PATH.lock` (created exclusively, so two
 * `bun run users` never interleave): without it, a writer that read the file before another's change
 * (say, while its operator typed a password) would write the old users back, undoing a removal.
 * Waits at most `waitMs` for another writer; a lock left by a crashed writer is reported, not broken.
 */
export async function withUsersFileLock<T>(path: string, fn: () => T | Promise<T>, waitMs = USERS_FILE_LOCK_WAIT_MS): Promise<T> {
  const lock = `${path}.lock`;
  const deadline = performance.now() + waitMs;
  let fd: number;
  for (;;) {
    try {
      fd = openSync(lock, "wx", USERS_FILE_MODE);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (performance.now() >= deadline) throw new Error(`${lock} is held by another writer (remove it if no \`bun run users\` is running)`, { cause: e });
      await sleep(LOCK_RETRY_MS);
    }
  }
  closeSync(fd);
  try {
    return await fn();
  } finally {
    unlinkSync(lock);
  }
}

export function writeFileAtomic(path: string, contents: string): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(12).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", USERS_FILE_MODE);
  try {
    try {
      fchmodSync(fd, USERS_FILE_MODE);
      const bytes = Buffer.from(contents, "utf8");
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed or never written: nothing to remove
    }
    throw e;
  }
  const dirFd = openSync(dir, "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
