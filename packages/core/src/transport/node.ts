/** node:net adapter (the Node build; also works under Bun's node:net). */
import * as net from "node:net";
import { NstpError } from "../errors.ts";
import { DEFAULT_FLUSH_TIMEOUT_MS, DEFAULT_TCP_KEEPALIVE_MS, type DialOptions, type ListenOptions, type Listener, type Transport, type Wire, type WireEvents } from "./wire.ts";

function wrap(socket: net.Socket, flushTimeoutMs = DEFAULT_FLUSH_TIMEOUT_MS): Wire {
  let ending = false;
  return {
    write(data) {
      if (!socket.destroyed && socket.writable) socket.write(data);
    },
    end() {
      if (ending || socket.destroyed) return;
      ending = true;
      // Flush, send FIN, then close without waiting for the peer's FIN: a hostile peer that never
      // closes its side must not keep the socket (and its memory) open. The flush itself is bounded:
      // end()'s callback never comes while the peer does not read.
      const deadline = setTimeout(() => socket.destroy(), flushTimeoutMs);
      deadline.unref(); // it bounds the socket's life, and must not be what keeps a process running
      socket.once("close", () => clearTimeout(deadline));
      socket.end(() => socket.destroy());
    },
    destroy() {
      socket.destroy();
    },
    pause() {
      socket.pause();
    },
    resume() {
      socket.resume();
    },
    get bufferedAmount() {
      return socket.writableLength;
    },
    get bytesSent() {
      return bytesSent(socket);
    },
    remoteAddress: socket.remoteAddress ?? "unknown",
  };
}

/**
 * Wire.bytesSent on node:net: what was dispatched to libuv (bytesWritten counts the chunks still in
 * the stream's buffer too) less what libuv still holds (its write queue: a write in flight shrinks
 * there as the kernel takes part of it). writableLength alone moves only when a whole write completes,
 * and a writev of a megabyte to a slow reader can take minutes, every one of them a live peer's
 * progress. The handle's writeQueueSize (libuv's uv_stream_get_write_queue_size) is not a documented
 * API; where it is missing (another runtime's node:net), completed writes are what counts.
 */
function bytesSent(socket: net.Socket): number {
  const internals = socket as unknown as { writableBuffer?: { chunk: Uint8Array }[]; _handle?: { writeQueueSize?: number } };
  const inLibuv = internals._handle?.writeQueueSize;
  if (inLibuv === undefined || !internals.writableBuffer) return socket.bytesWritten - socket.writableLength;
  let stillBuffered = 0;
  for (const entry of internals.writableBuffer) stillBuffered += entry.chunk.length;
  return socket.bytesWritten - stillBuffered - inLibuv;
}

function keepAlive(socket: net.Socket, ms = DEFAULT_TCP_KEEPALIVE_MS): void {
  if (ms > 0) socket.setKeepAlive(true, ms);
}

function bind(socket: net.Socket, events: WireEvents): void {
  let failure: Error | undefined;
  socket.on("data", (chunk: Buffer) => events.data(chunk));
  socket.on("drain", () => events.drain());
  socket.on("error", (e) => (failure = e));
  socket.on("close", () => events.close(failure));
}

export const nodeTransport: Transport = {
  name: "node",

  listen(opts: ListenOptions, accept): Promise<Listener> {
    const server = net.createServer({ noDelay: true, pauseOnConnect: false });
    server.maxConnections = opts.maxConnections;
    let open = 0;
    server.on("connection", (socket) => {
      open++;
      socket.once("close", () => open--);
      keepAlive(socket, opts.tcpKeepAliveMs);
      bind(socket, accept(wrap(socket, opts.flushTimeoutMs)));
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      // A deep accept queue: with Node's default of 511, a burst of connections overflows it and the
      // kernel leaves the excess half-accepted for seconds (capped by net.core.somaxconn).
      server.listen({ port: opts.port, host: opts.host, backlog: 4096, reusePort: opts.reusePort === true }, () => {
        server.off("error", reject);
        const addr = server.address() as net.AddressInfo;
        resolve({
          host: addr.address,
          port: addr.port,
          get connections() {
            return open;
          },
          close: () => new Promise<void>((res) => server.close(() => res())),
        });
      });
    });
  },

  dial(opts: DialOptions, attach): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new NstpError("ERR_CONNECT", `connect to ${opts.host}:${opts.port} timed out`));
      }, opts.timeoutMs);
      socket.once("error", (e) => {
        clearTimeout(timer);
        reject(new NstpError("ERR_CONNECT", `cannot connect to ${opts.host}:${opts.port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`, { cause: e }));
      });
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        keepAlive(socket, opts.tcpKeepAliveMs);
        const wire = wrap(socket, opts.flushTimeoutMs);
        bind(socket, attach(wire));
        resolve(wire);
      });
    });
  },
};
