/**
 * Replacing the users file safely: its keys are password-equivalent (docs/PROTOCOL.md, "Users file").
 *
 * The new contents go to a temporary file with a random name, created exclusively ('wx': O_CREAT |
 * O_EXCL, so a file or symlink planted at that name is never followed or reused) in the same directory
 * (so the rename stays on one filesystem and is atomic), with mode 0600 set on the open descriptor
 * whatever the umask; it is fsynced, renamed over the file (whose old mode, say 0644, goes with the old
 * inode), and the directory is fsynced so the rename itself survives a crash.
 */
import { closeSync, fchmodSync, fsyncSync, lstatSync, openSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import type { Logger } from "@nstp/core";
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

/**
 * Creates `path` empty with mode 0600 if nothing is there, so that a database the caller then opens
 * is never readable by other users whatever the umask (SQLite creates a missing file 0644 under umask
 * 022, and gives its -wal and -shm files the main file's mode: both runtimes' builds were checked).
 * An existing file at `path` is left as it is (O_EXCL: nothing is followed). A symbolic link there is
 * refused: SQLite would follow it and create a missing target at the umask's mode, or write the
 * records into whatever file it names; the store is created and written at a real path only.
 */
export function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, "wx", USERS_FILE_MODE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    if (lstatSync(path).isSymbolicLink()) {
      throw new Error(`${path} is a symbolic link: the credential store is written only at a real path (give the link's target instead)`, { cause: e });
    }
    return;
  }
  try {
    fchmodSync(fd, USERS_FILE_MODE);
  } finally {
    closeSync(fd);
  }
}

/**
 * Those of `paths` (a store's files; missing ones are skipped) group or others can read or write,
 * each as "PATH (MODE)": their records are password-equivalent (docs/PROTOCOL.md, "Users file").
 */
export function openToOthers(paths: readonly string[]): string[] {
  const open: string[] = [];
  for (const p of paths) {
    let mode: number;
    try {
      mode = statSync(p).mode & 0o777;
    } catch {
      continue;
    }
    if (mode & 0o077) open.push(`${p} (${mode.toString(8).padStart(4, "0")})`);
  }
  return open;
}

export const OPEN_TO_OTHERS_WARNING = "credential store is open to other local users: its records are password-equivalent; chmod 600 it";

/** Logs one warning if any of `paths` is open to others (openToOthers); only paths and modes. True if it warned. */
export function warnIfOpenToOthers(paths: readonly string[], log: Logger | undefined): boolean {
  const open = openToOthers(paths);
  if (open.length === 0) return false;
  log?.warn(OPEN_TO_OTHERS_WARNING, { files: open.join(", ") });
  return true;
}
