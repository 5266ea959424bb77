import type { DefenceSources } from "./defence-metrics.ts";

/** Counters the server keeps about itself (sessions, handshakes by outcome, messages and bytes). */
export class ServerStats {
  /** Admission and guessing budget, set by startServer (their own counters). */
  defence: DefenceSources | undefined;
  connections = 0;
  /** Connections accepted whose handshake has not completed. */
  handshaking = 0;
  /** Connections refused at accept (an address out of guesses). */
  refused = 0;
  connectionsTotal = 0;
  handshakesOk = 0;
  handshakesByProtocol: Record<string, number> = {};
  handshakesFailed: Record<string, number> = {};
  sessionsFailed: Record<string, number> = {};
  /** Sessions the server ended without an error (idle, lifetime, user removed), by reason. */
  sessionsEnded: Record<string, number> = {};
  /** Sockets open at the transport, including refused ones and ones flushing their last bytes. */
  sockets = 0;
  messagesIn = 0;
  messagesOut = 0;
  payloadIn = 0;
  payloadOut = 0;
  wireIn = 0;
  wireOut = 0;
  /** PROXY protocol headers accepted from trusted proxies, by version ("1", "2"). */
  proxyHeaders: Record<string, number> = {};
  /** Connections closed for their PROXY header, by reason (malformed, oversized, untrusted, ...). */
  proxyHeaderFailures: Record<string, number> = {};

  connectionOpened(): void {
    this.connections++;
    this.connectionsTotal++;
  }
  connectionClosed(): void {
    this.connections--;
  }
  handshakeSucceeded(protocol: string): void {
    this.handshakesOk++;
    this.handshakesByProtocol[protocol] = (this.handshakesByProtocol[protocol] ?? 0) + 1;
  }
  handshakeFailed(code: string): void {
    this.handshakesFailed[code] = (this.handshakesFailed[code] ?? 0) + 1;
  }
  sessionFailed(code: string): void {
    this.sessionsFailed[code] = (this.sessionsFailed[code] ?? 0) + 1;
  }
  sessionEnded(reason: string): void {
    this.sessionsEnded[reason] = (this.sessionsEnded[reason] ?? 0) + 1;
  }
  messageIn(bytes: number): void {
    this.messagesIn++;
    this.payloadIn += bytes;
  }
  messageOut(bytes: number): void {
    this.messagesOut++;
    this.payloadOut += bytes;
  }
  proxyHeaderAccepted(version: number): void {
    this.proxyHeaders[version] = (this.proxyHeaders[version] ?? 0) + 1;
  }
  proxyHeaderFailed(reason: string): void {
    this.proxyHeaderFailures[reason] = (this.proxyHeaderFailures[reason] ?? 0) + 1;
  }
  bytesIn(n: number): void {
    this.wireIn += n;
  }
  bytesOut(n: number): void {
    this.wireOut += n;
  }
}
