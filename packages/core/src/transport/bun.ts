/**
 * Bun.listen / Bun.connect adapter (the Bun build). Bun's socket.write may accept only part of the
 * bytes; the rest waits here, as a copy (copiesWrites), bounded by the driver's backpressure, and goes
 * out on "drain".
 */
import type { Socket } from "bun";
import { NstpError } from "../errors.ts";
import { DEFAULT_FLUSH_TIMEOUT_MS, DEFAULT_TCP_KEEPALIVE_MS, type DialOptions, type ListenOptions, type Listener, type Transport, type Wire, type WireEvents } from "./wire.ts";

/** A socket's data: its wire and the driver's events (undefined once closed). */
interface Slot {
  readonly wire?: BunWire;
  events?: WireEvents;
}

/**
 * An accepted socket's wire is its own slot (socket.data), so a connection holds no separate slot
 * object for its whole life (issue 13: an idle session's objects). A dialled socket needs its slot
 * before the wire exists (Bun.connect takes it), so it has a plain one.
 */
class BunWire implements Wire, Slot {
  events: WireEvents | undefined;
  /** What the socket has not taken yet; made on the first partial write, dropped once empty. */
  private queue: Uint8Array[] | undefined;
  private queued = 0;
  /** Bytes the socket has taken (Wire.bytesSent). */
  private sent = 0;
  /** end()'s flush deadline: Bun's socket.end() waits for ever for a peer that stops reading. */
  private flushDeadline: ReturnType<typeof setTimeout> | undefined;
  /** end() was called (its deadline is set then, and never unset): no field of its own, see Slot. */
  private get ending(): boolean {
    return this.flushDeadline !== undefined;
  }
  private readonly flushTimeoutMs: number;
  closed = false;
  readonly remoteAddress: string;
  private readonly socket: Socket<Slot>;
  constructor(socket: Socket<Slot>, flushTimeoutMs = DEFAULT_FLUSH_TIMEOUT_MS) {
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress;
    this.flushTimeoutMs = flushTimeoutMs;
  }

  /** Slot: the wire itself. */
  get wire(): BunWire {
    return this;
  }

  /** The transport saw the socket close. */
  markClosed(): void {
    this.closed = true;
    clearTimeout(this.flushDeadline);
  }

  get bufferedAmount(): number {
    return this.queued;
  }

  get bytesSent(): number {
    return this.sent;
  }

  /**
   * Bun's socket.write takes what the kernel accepts at once and keeps nothing; what is left is
   * copied into the queue, so the caller may reuse its buffer as soon as write() returns.
   */
  get copiesWrites(): boolean {
    return true;
  }

  write(data: Uint8Array): void {
    if (this.closed || this.ending) return;
    if (this.queued > 0) {
      this.queue!.push(data.slice());
      this.queued += data.length;
      return;
    }
    const n = this.socket.write(data);
    if (n < 0) return;
    this.sent += n;
    if (n < data.length) {
      const rest = data.slice(n);
      (this.queue ??= []).push(rest);
      this.queued += rest.length;
    }
  }

  /** Writes what is queued; returns true when the queue is empty. */
  flush(): boolean {
    while (this.queue && this.queue.length > 0 && !this.closed) {
      const head = this.queue[0]!;
      const n = this.socket.write(head);
      if (n < 0) return false;
      this.queued -= n;
      this.sent += n;
      if (n < head.length) {
        this.queue[0] = head.subarray(n);
        return false;
      }
      this.queue.shift();
    }
    if (this.queued === 0) this.queue = undefined;
    if (this.ending && this.queued === 0 && !this.closed) this.socket.end();
    return this.queued === 0;
  }

  end(): void {
    if (this.closed || this.ending) return;
    // Unref'd: it bounds the socket's life, and must not be what keeps a process running.
    this.flushDeadline = setTimeout(() => this.destroy(), this.flushTimeoutMs);
    this.flushDeadline.unref?.();
    if (this.queued === 0) this.socket.end();
  }

  destroy(): void {
    if (this.closed) return;
    this.markClosed();
    this.queue = undefined;
    this.queued = 0;
    this.socket.terminate();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

function keepAlive(socket: Socket<Slot>, ms = DEFAULT_TCP_KEEPALIVE_MS): void {
  if (ms > 0) socket.setKeepAlive(true, ms);
}

function handlers(onOpen: (socket: Socket<Slot>) => void) {
  return {
    open: onOpen,
    data(socket: Socket<Slot>, data: Uint8Array) {
      socket.data?.events?.data(data);
    },
    drain(socket: Socket<Slot>) {
      const { wire, events } = socket.data ?? {};
      if (wire?.flush()) events?.drain();
    },
    close(socket: Socket<Slot>, error?: Error) {
      if (!socket.data) return;
      const { wire, events } = socket.data;
      wire?.markClosed();
      socket.data.events = undefined;
      events?.close(error);
    },
    error(socket: Socket<Slot>, error: Error) {
      if (!socket.data) return;
      const { wire, events } = socket.data;
      wire?.markClosed();
      socket.data.events = undefined;
      events?.close(error);
    },
  };
}

export const bunTransport: Transport = {
  name: "bun",

  async listen(opts: ListenOptions, accept): Promise<Listener> {
    let open = 0;
    const h = handlers((socket) => {
      if (open >= opts.maxConnections) {
        socket.terminate();
        return;
      }
      open++;
      keepAlive(socket, opts.tcpKeepAliveMs);
      const wire = new BunWire(socket, opts.flushTimeoutMs);
      // A slot per connection (the wire itself): Bun would otherwise share one initial data object.
      socket.data = wire;
      wire.events = accept(wire);
    });
    const base = h.close;
    const listener = Bun.listen<Slot>({
      hostname: opts.host,
      port: opts.port,
      // Bun.listen honours reusePort (SO_REUSEPORT; checked with two processes on one port under Bun
      // 1.4.5), but bun-types 1.4.5 declares it on the connect options only.
      ...({ reusePort: opts.reusePort === true } as {}),
      socket: {
        ...h,
        close(socket: Socket<Slot>, error?: Error) {
          if (socket.data?.wire) open--;
          base(socket, error);
        },
      },
    });
    return {
      host: listener.hostname,
      port: listener.port,
      get connections() {
        return open;
      },
      async close() {
        listener.stop(false);
      },
    };
  },

  async dial(opts: DialOptions, attach): Promise<Wire> {
    const slot: { wire?: BunWire; events?: WireEvents } = {};
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NstpError("ERR_CONNECT", `connect to ${opts.host}:${opts.port} timed out`)), opts.timeoutMs);
    });
    try {
      const socket = await Promise.race([
        Bun.connect<Slot>({
          hostname: opts.host,
          port: opts.port,
          data: slot,
          socket: handlers(() => {}),
        }),
        timeout,
      ]);
      keepAlive(socket, opts.tcpKeepAliveMs);
      const wire = new BunWire(socket, opts.flushTimeoutMs);
      slot.wire = wire;
      slot.events = attach(wire);
      return wire;
    } catch (e) {
      if (e instanceof NstpError) throw e;
      const code = (e as { code?: string }).code;
      throw new NstpError("ERR_CONNECT", `cannot connect to ${opts.host}:${opts.port}: ${code ?? String(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  },
};
