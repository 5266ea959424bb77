/**
 * What a sans-IO protocol machine hands back to its driver. Machines never touch sockets, timers or
 * globals: they take bytes and return these, and throw an NstpError when the connection must close.
 */
export type Output =
  /** Bytes to write to the peer, in order. */
  | { type: "send"; data: Uint8Array }
  /** The server needs this user's PSK (or a dummy key for an unknown user) before it can go on. */
  | { type: "need-key"; username: string }
  /** Both sides proved knowledge of the key; application messages may flow. */
  | { type: "established"; username: string }
  /** An authenticated application message (server: a request; client: a reply). */
  | { type: "message"; data: Uint8Array }
  /** The peer ended the session cleanly (v2 close chunk): nothing was truncated. */
  | { type: "closed" };

export type Random = (length: number) => Uint8Array;
