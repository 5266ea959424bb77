/**
 * The byte-stream interface every transport adapter provides. Protocol drivers see only this, so the
 * Bun build (Bun.listen / Bun.connect) and the Node build (node:net) run the same logic.
 */
export interface Wire {
  /** Queues bytes for the peer; never writes partially, never throws after close. */
  write(data: Uint8Array): void;
  /**
   * Flushes what is queued, then closes the write side and the connection; if the peer has not taken
   * it all within the flush deadline (a peer that stops reading), destroys the connection.
   */
  end(): void;
  /** Closes at once, dropping anything queued. */
  destroy(): void;
  /** Stops reading (the peer sees TCP backpressure) until resume(). */
  pause(): void;
  resume(): void;
  /** Bytes accepted by write() but not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /**
   * Bytes handed to the kernel so far (it took them into the socket's send buffer), counted as
   * partial writes happen: it advances whenever the peer makes room by reading, and stands still
   * while the peer reads nothing. The server's write-stall deadline watches it (lifetime.ts).
   */
  readonly bytesSent: number;
  /**
   * True when write() has handed every byte to the kernel or copied what it keeps before it returns,
   * so the caller may reuse the buffer it wrote from (the v2 writer's per-thread output: SealOptions
   * `transient`). Absent or false where the transport keeps a reference to the bytes until they have
   * gone (node:net's socket.write).
   */
  readonly copiesWrites?: boolean;
  readonly remoteAddress: string;
}

export interface WireEvents {
  data(chunk: Uint8Array): void;
  /** Everything queued has been handed to the kernel. */
  drain(): void;
  /** The connection is gone; `error` says why when it was not a clean close. */
  close(error?: Error): void;
}

/**
 * How long end() waits for the peer to take what is queued before it destroys the connection. A peer
 * that stops reading would otherwise hold the socket, and what is queued for it, for ever.
 */
export const DEFAULT_FLUSH_TIMEOUT_MS = 5000;

/**
 * TCP keepalive's idle time before the kernel's first probe (node:net setKeepAlive, Bun
 * socket.setKeepAlive): it keeps NAT mappings warm and lets the kernel drop a peer that vanished
 * even where the protocol cannot ping (the reference's sessions).
 */
export const DEFAULT_TCP_KEEPALIVE_MS = 60_000;

export interface ListenOptions {
  host: string;
  port: number;
  /**
   * Share the port with other processes listening with reusePort (SO_REUSEPORT: the kernel spreads
   * new connections over them): the server's --workers.
   */
  reusePort?: boolean;
  /** TCP keepalive's idle time (default DEFAULT_TCP_KEEPALIVE_MS; 0 off). */
  tcpKeepAliveMs?: number;
  /** Connections beyond this are closed as soon as they are accepted. */
  maxConnections: number;
  /** end()'s flush deadline (default DEFAULT_FLUSH_TIMEOUT_MS). */
  flushTimeoutMs?: number;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
  /** Open connections. */
  readonly connections: number;
  /** Stops accepting; existing connections are left to their owners. */
  close(): Promise<void>;
}

export interface DialOptions {
  host: string;
  port: number;
  timeoutMs: number;
  /** end()'s flush deadline (default DEFAULT_FLUSH_TIMEOUT_MS). */
  flushTimeoutMs?: number;
  /** TCP keepalive's idle time (default DEFAULT_TCP_KEEPALIVE_MS; 0 off). */
  tcpKeepAliveMs?: number;
}

export interface Transport {
  /** The adapter's name (open: a WebSocket or serial adapter names itself), for logs and metrics. */
  readonly name: string;
  listen(opts: ListenOptions, accept: (wire: Wire) => WireEvents): Promise<Listener>;
  dial(opts: DialOptions, attach: (wire: Wire) => WireEvents): Promise<Wire>;
}
