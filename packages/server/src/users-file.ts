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
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";

export const USERS_FILE_MODE = 0o600;

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
