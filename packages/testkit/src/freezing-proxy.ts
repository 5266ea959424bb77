/**
 * A TCP proxy for tests that can vanish silently: freeze() stops forwarding in both directions and
 * stops reading, without a FIN or RST, as a NAT that dropped its mapping or a host that lost power
 * looks to both ends. Loopback only, port 0.
 */
import * as net from "node:net";

export interface FreezingProxy {
  readonly port: number;
  /** From now on nothing passes either way, and neither end is told. */
  freeze(): void;
  close(): Promise<void>;
}

export function startFreezingProxy(targetPort: number): Promise<FreezingProxy> {
  const sockets = new Set<net.Socket>();
  let frozen = false;
  const server = net.createServer((down) => {
    const up = net.connect({ host: "127.0.0.1", port: targetPort });
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on("data", (d) => {
        if (!frozen) to.write(d);
      });
      from.on("end", () => {
        if (!frozen) to.end();
      });
    };
    forward(down, up);
    forward(up, down);
  });
  return new Promise((resolve) => {
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        freeze() {
          frozen = true;
          // Stop reading too: the ends' bytes pile up in the kernel's buffers, as towards a dead peer.
          for (const s of sockets) s.pause();
        },
        close: () =>
          new Promise<void>((res) => {
            for (const s of sockets) s.destroy();
            server.close(() => res());
          }),
      });
    });
  });
}
