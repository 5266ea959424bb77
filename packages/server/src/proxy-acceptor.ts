/**
 * The PROXY protocol on the listener (HAProxy's doc/proxy-protocol.txt), as a wrapper around the
 * server's accept function. From a trusted proxy the header is required: it is read with a bounded
 * buffer under the handshake deadline, before protocol dispatch, and the client address it carries
 * becomes the connection's remoteAddress (budgets, logs, metrics). From anyone else a header is
 * refused: a connection that begins with a PROXY signature is closed ("the receiver ... MUST not try
 * to guess whether the protocol header is present", §2). Every failure closes silently, counted by reason.
 *
 * The untrusted check holds back at most 11 bytes, and only from a connection whose first bytes are a
 * signature's prefix; every client of ours sends more than that before waiting for the server (a v2
 * preamble and message 1, or a reference hello of at least 18 bytes), so holding them cannot stall one.
 */
import { type Logger, type Wire, type WireEvents, concat, proxy } from "@nstp/core";
import type { ServerStats } from "./stats.ts";
import type { TrustedProxies } from "./trusted-proxies.ts";

export interface ProxyAcceptorOptions {
  trusted: TrustedProxies;
  /** The handshake deadline: the header must arrive within it; what is left of it goes to the handshake. */
  timeoutMs: number;
  /** Connections from proxies still sending their header, at most; more are closed at once. */
  maxPending: number;
  maxHeaderSize?: number;
  stats: ServerStats;
  log: Logger;
}

/** The server's accept, told how much of the handshake deadline the header already took. */
export type Accept = (wire: Wire, headerMs: number) => WireEvents;

const IGNORE: WireEvents = { data() {}, drain() {}, close() {} };

/** `raw` as seen from the client the proxy relays for. */
function relayedWire(raw: Wire, remoteAddress: string): Wire {
  return {
    write: (d) => raw.write(d),
    end: () => raw.end(),
    destroy: () => raw.destroy(),
    pause: () => raw.pause(),
    resume: () => raw.resume(),
    get bufferedAmount() {
      return raw.bufferedAmount;
    },
    get bytesSent() {
      return raw.bytesSent;
    },
    get copiesWrites() {
      return raw.copiesWrites;
    },
    remoteAddress,
  };
}

export function proxyAcceptor(opts: ProxyAcceptorOptions, accept: Accept): (wire: Wire) => WireEvents {
  let pending = 0;
  const failed = (raw: Wire, reason: proxy.ProxyHeaderFailure, message: string) => {
    opts.stats.proxyHeaderFailed(reason);
    opts.log.debug("PROXY header refused", { remote: raw.remoteAddress, reason, detail: message });
  };

  /** A trusted proxy's connection: header first, then the server's own handling under the client's address. */
  const fromProxy = (raw: Wire): WireEvents => {
    if (pending >= opts.maxPending) {
      opts.stats.refused++;
      raw.destroy();
      return IGNORE;
    }
    pending++;
    const reader = new proxy.ProxyHeaderReader(opts.maxHeaderSize);
    const started = performance.now();
    let inner: WireEvents | undefined;
    let done = false;
    const settle = () => {
      done = true;
      pending--;
      clearTimeout(timer);
    };
    const fail = (e: unknown) => {
      if (done) return;
      settle();
      const err = e instanceof proxy.ProxyHeaderError ? e : new proxy.ProxyHeaderError("malformed", String(e));
      failed(raw, err.reason, err.message);
      raw.destroy();
    };
    const timer = setTimeout(() => fail(new proxy.ProxyHeaderError("timeout", "no complete header within the handshake deadline")), opts.timeoutMs);
    return {
      data(chunk) {
        if (inner) return inner.data(chunk);
        if (done) return;
        let got: ReturnType<proxy.ProxyHeaderReader["push"]>;
        try {
          got = reader.push(chunk);
        } catch (e) {
          return fail(e);
        }
        if (!got) return;
        settle();
        opts.stats.proxyHeaderAccepted(got.header.version);
        const source = got.header.source?.address;
        inner = accept(source ? relayedWire(raw, source) : raw, performance.now() - started);
        if (got.rest.length) inner.data(got.rest);
      },
      drain() {
        inner?.drain();
      },
      close(error) {
        if (inner) return inner.close(error);
        fail(new proxy.ProxyHeaderError("truncated", "closed before the header was complete"));
      },
    };
  };

  /** Anyone else: served directly, unless the connection begins with a PROXY signature. */
  const direct = (raw: Wire): WireEvents => {
    const inner = accept(raw, 0);
    let held: Uint8Array | undefined;
    let decided = false;
    return {
      data(chunk) {
        if (decided) return inner.data(chunk);
        const all = held ? concat(held, chunk) : chunk;
        const match = proxy.signatureMatch(all);
        if (match === "maybe") {
          held = all === chunk ? chunk.slice() : all;
          return;
        }
        decided = true;
        held = undefined;
        if (match === "no") return inner.data(all);
        failed(raw, "untrusted", "a PROXY header from a peer not in --trusted-proxies");
        raw.destroy();
      },
      drain: () => inner.drain(),
      close: (error) => inner.close(error),
    };
  };

  return (raw) => (opts.trusted.has(raw.remoteAddress) ? fromProxy(raw) : direct(raw));
}
