/** The client's default session limits, and the named windows of the versions (from core's registry). */
import { protocolNamed } from "@nstp/core";
import type { SessionLimits } from "./session.ts";

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  handshakeTimeoutMs: 10_000,
  replyTimeoutMs: 30_000,
  // Replaced by the version's own default (the registry's defaults.window) unless given.
  window: 1,
  maxQueued: 65_536,
  maxBuffered: 1024,
  writeHighWaterMark: 1 << 20,
  keepaliveMs: 30_000,
};

/** v2 pipelines: its server answers in order and frames carry their own boundaries. */
export const V2_WINDOW = protocolNamed("v2").defaults.window;
