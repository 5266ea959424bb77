/**
 * Every protocol version, one entry each: its name, how it claims a connection from its first bytes,
 * its machines, capabilities and defaults. Dispatch, the CLIs, the client, the bench and the soak read
 * this list; a new version is one folder, one entry here, and its section in docs/PROTOCOL.md.
 */
import type { CryptoBackend } from "./crypto/backend.ts";
import { NstpError } from "./errors.ts";
import type { Random } from "./events.ts";
import { LegacyClient } from "./legacy/client.ts";
import { DEFAULT_MAX_MESSAGE_SIZE as LEGACY_MAX_MESSAGE_SIZE, LEGACY_CAPABILITIES, LegacyServer } from "./legacy/server.ts";
import type { Capabilities, ClientMachine, CredentialFakes, ServerMachine } from "./machine.ts";
import { STREAM_CAPABILITIES } from "./v2/endpoint.ts";
import { V2Client } from "./v2/client.ts";
import { V2Server } from "./v2/server.ts";
import { BUSY_SIGNAL, DEFAULT_MAX_MESSAGE_SIZE as STREAM_MAX_MESSAGE_SIZE, PREAMBLE_MAGIC as V2_MAGIC } from "./v2/wire.ts";
import { V3Client } from "./v3/client.ts";
import { proverKeysFromPsk } from "./v3/keys.ts";
import { V3Server } from "./v3/server.ts";
import { PREAMBLE_MAGIC as V3_MAGIC } from "./v3/wire.ts";
import { utf8 } from "./bytes.ts";

/**
 * What a server sends before closing a connection it refuses before knowing its version (at the
 * connection cap, an address out of guesses, a newcomer evicted at once): 00 00 then a close reads as
 * "busy" to every version: the marker versions' busy signal in place of message 2, and a close before
 * the reference's 8-byte session nonce.
 */
export const REFUSAL_SIGNAL: Uint8Array = BUSY_SIGNAL;

/** Bytes dispatch may need before some version claims the connection: `00 'NSTP'` and a version byte. */
export const CLAIM_BYTES = V2_MAGIC.length;

/** A version's answer to the first bytes: mine, not mine, or not decidable yet (fewer than CLAIM_BYTES). */
export type Claim = "yes" | "no" | "more";

export interface ServerFactoryOptions {
  crypto: CryptoBackend;
  /** The server's device salt (v3 binds it into SPAKE2+ as idVerifier). */
  deviceSalt: Uint8Array;
  /** Stand-ins for credentials the store lacks (machine.ts). */
  fakes?: CredentialFakes;
  maxMessageSize?: number;
  random?: Random;
  /** Curve work leaves the machine as "need-curve" (the driver runs it inline or in the pool). */
  deferCurve?: boolean;
}

export interface ClientFactoryOptions {
  crypto: CryptoBackend;
  username: string;
  deviceSalt: Uint8Array;
  /** The PBKDF2 password key (keys/password.ts); every version's keys start from it. */
  psk: Uint8Array;
  maxMessageSize?: number;
}

export interface ProtocolDefaults {
  /** Largest message accepted. */
  readonly maxMessageSize: number;
  /** Requests a client sends before their replies arrive (1: lockstep). */
  readonly window: number;
  /** The server ends a session idle this long (0: never; for versions whose clients cannot ping). */
  readonly idleTimeoutMs: number;
}

export interface ProtocolEntry {
  readonly name: string;
  readonly capabilities: Capabilities;
  readonly defaults: ProtocolDefaults;
  claim(head: Uint8Array): Claim;
  server(opts: ServerFactoryOptions): ServerMachine;
  client(opts: ClientFactoryOptions): ClientMachine;
}

/** Claims by exact prefix: `00 'N' 'S' 'T' 'P'` then the version byte (docs/PROTOCOL.md, "Version dispatch"). */
function markerClaim(magic: Uint8Array): (head: Uint8Array) => Claim {
  return (head) => {
    const n = Math.min(head.length, magic.length);
    for (let i = 0; i < n; i++) if (head[i] !== magic[i]) return "no";
    return n === magic.length ? "yes" : "more";
  };
}

const STREAM_DEFAULTS: ProtocolDefaults = { maxMessageSize: STREAM_MAX_MESSAGE_SIZE, window: 4096, idleTimeoutMs: 300_000 };

// `as const`: the names stay literal, so every closed list of versions (the bench's report rows,
// for one) is typed from here (RegisteredProtocol) and a new entry reaches it with no other edit.
export const PROTOCOLS = [
  {
    name: "legacy",
    capabilities: LEGACY_CAPABILITIES,
    // The reference's usernames are 1..255 bytes, so its first byte is never the marker's 0.
    claim: (head) => (head.length === 0 ? "more" : head[0] !== 0 ? "yes" : "no"),
    defaults: { maxMessageSize: LEGACY_MAX_MESSAGE_SIZE, window: 1, idleTimeoutMs: 0 },
    server: (o) => new LegacyServer({ crypto: o.crypto, fakes: o.fakes, maxMessageSize: o.maxMessageSize, random: o.random }),
    client: (o) => new LegacyClient({ crypto: o.crypto, username: o.username, psk: o.psk }),
  },
  {
    name: "v2",
    capabilities: STREAM_CAPABILITIES,
    claim: markerClaim(V2_MAGIC),
    defaults: STREAM_DEFAULTS,
    server: (o) => new V2Server({ crypto: o.crypto, fakes: o.fakes, maxMessageSize: o.maxMessageSize }),
    client: (o) => new V2Client({ crypto: o.crypto, username: o.username, psk: o.psk, maxMessageSize: o.maxMessageSize }),
  },
  {
    name: "v3",
    capabilities: STREAM_CAPABILITIES,
    claim: markerClaim(V3_MAGIC),
    defaults: STREAM_DEFAULTS,
    server: (o) => new V3Server({ deferCurve: o.deferCurve, crypto: o.crypto, deviceSalt: o.deviceSalt, fakes: o.fakes, maxMessageSize: o.maxMessageSize }),
    client: (o) =>
      new V3Client({
        crypto: o.crypto,
        username: o.username,
        deviceSalt: o.deviceSalt,
        // w0 and w1 from the PSK (RFC 9383 §3.2 via v3/keys.ts): HKDF, no second PBKDF2.
        keys: proverKeysFromPsk(o.crypto, o.psk, o.deviceSalt, utf8(o.username)),
        // Derived for this connection only: the machine zeroes them when its handshake is over.
        ownsKeys: true,
        maxMessageSize: o.maxMessageSize,
      }),
  },
] as const satisfies readonly ProtocolEntry[];

/** A registered version's name, as a type. */
export type RegisteredProtocol = (typeof PROTOCOLS)[number]["name"];

export const PROTOCOL_NAMES: readonly RegisteredProtocol[] = PROTOCOLS.map((p) => p.name);

/** `name` is a registered version's. */
export function isRegisteredProtocol(name: string): name is RegisteredProtocol {
  return (PROTOCOL_NAMES as readonly string[]).includes(name);
}

/** What a client speaks unless told otherwise: the newest version. */
export const DEFAULT_PROTOCOL = PROTOCOLS[PROTOCOLS.length - 1]!.name;

export function protocolNamed(name: string): ProtocolEntry {
  const p: ProtocolEntry | undefined = PROTOCOLS.find((e) => e.name === name);
  if (!p) throw new NstpError("ERR_INVALID_ARG", `unknown protocol "${name}" (known: ${PROTOCOL_NAMES.join(", ")})`);
  return p;
}

/** "legacy,v2,v3" → their entries, in registry order; at least one. */
export function parseProtocolList(list: string): ProtocolEntry[] {
  const names = new Set(list.split(",").map((s) => s.trim()).filter(Boolean));
  for (const n of names) protocolNamed(n);
  if (!names.size) throw new NstpError("ERR_INVALID_ARG", "no protocol enabled");
  return PROTOCOLS.filter((p: ProtocolEntry) => names.has(p.name));
}
