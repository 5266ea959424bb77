/**
 * Every failure the library reports is an NstpError with a stable `code`.
 * Codes are part of the public API: applications switch on them, so they never change meaning.
 */
export type ErrorCode =
  /** The peer could not prove knowledge of the password (or the user is unknown: indistinguishable by design). */
  | "ERR_AUTH"
  /** A message failed authentication (bad tag), or was replayed, reordered or reflected. */
  | "ERR_DECRYPT"
  /** Bytes that do not follow the wire format, or arrive in a state that does not expect them. */
  | "ERR_PROTOCOL"
  /** A frame or message larger than the configured maximum. */
  | "ERR_TOO_LARGE"
  /** A deadline passed: handshake, partial message or reply. */
  | "ERR_TIMEOUT"
  /** The connection closed before the operation finished. */
  | "ERR_CLOSED"
  /** The TCP connection could not be established. */
  | "ERR_CONNECT"
  /** The server refused the handshake because it is at capacity. */
  | "ERR_BUSY"
  /** A counter would wrap: the session must be re-established. */
  | "ERR_EXHAUSTED"
  /** An argument given to the library is invalid. */
  | "ERR_INVALID_ARG";

export class NstpError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NstpError";
    this.code = code;
  }
}

/**
 * Authentication and decryption failures share one class so that callers (and the peer) cannot
 * tell a wrong password from an unknown user, nor which check failed.
 */
export class AuthError extends NstpError {
  constructor(message = "authentication failed", options?: { cause?: unknown }) {
    super("ERR_AUTH", message, options);
    this.name = "AuthError";
  }
}

export class DecryptError extends NstpError {
  constructor(message = "message authentication failed", options?: { cause?: unknown }) {
    super("ERR_DECRYPT", message, options);
    this.name = "DecryptError";
  }
}

export class ProtocolError extends NstpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_PROTOCOL", message, options);
    this.name = "ProtocolError";
  }
}

export class TooLargeError extends NstpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_TOO_LARGE", message, options);
    this.name = "TooLargeError";
  }
}

export function isNstpError(e: unknown): e is NstpError {
  return e instanceof NstpError;
}

/** Wraps anything thrown into an NstpError, keeping the original as `cause`. */
export function toNstpError(e: unknown, fallback: ErrorCode, message: string): NstpError {
  return e instanceof NstpError ? e : new NstpError(fallback, message, { cause: e });
}
