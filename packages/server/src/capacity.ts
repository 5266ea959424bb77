/**
 * The default connection cap, from the process's open-file limit: every connection holds one file
 * descriptor, the transport admits up to 2 × maxHandshaking beyond the cap (refused and flushing
 * sockets, admission's overflow: server.ts), and the process needs some for itself (users file or
 * database, metrics, worker pool, logs).
 */
import { readFileSync } from "node:fs";

/** Descriptors kept for the process itself. */
export const RESERVED_DESCRIPTORS = 256;
/** Where the limit cannot be read (not Linux). */
export const FALLBACK_MAX_CONNECTIONS = 10_000;
/** An "unlimited" or huge limit still gets a cap that memory can afford (about 1.5 GB of idle sessions at 15 KiB). */
export const CEILING_MAX_CONNECTIONS = 100_000;

/** The soft RLIMIT_NOFILE (Linux /proc/self/limits); undefined when unknown, Infinity when unlimited. */
export function openFileLimit(limits = readLimits()): number | undefined {
  const m = /^Max open files\s+(\S+)/m.exec(limits ?? "");
  if (!m) return undefined;
  return m[1] === "unlimited" ? Infinity : Number(m[1]);
}

function readLimits(): string | undefined {
  try {
    return readFileSync("/proc/self/limits", "utf8");
  } catch {
    return undefined;
  }
}

/** What fits under the open-file limit (18,720 at this host's 20,000 with the default 512 handshakes). */
export function defaultMaxConnections(maxHandshaking: number, nofile = openFileLimit()): number {
  if (nofile === undefined || !Number.isFinite(nofile)) return nofile === undefined ? FALLBACK_MAX_CONNECTIONS : CEILING_MAX_CONNECTIONS;
  return Math.max(1, Math.min(CEILING_MAX_CONNECTIONS, nofile - 2 * maxHandshaking - RESERVED_DESCRIPTORS));
}
