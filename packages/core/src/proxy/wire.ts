/**
 * The PROXY protocol's two header formats (HAProxy's doc/proxy-protocol.txt), every size and offset
 * named here and nowhere else, parsed exactly: anything that does not match the specification is
 * refused (§2.1: "Any sequence which does not exactly match the protocol must be discarded and cause
 * the receiver to abort the connection").
 *
 *   v1 = "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF  |  "PROXY" SP "UNKNOWN" [...] CRLF
 *        at most 107 bytes with the CRLF (§2.1)
 *   v2 = [signature: 12][version 2 << 4 | command: 1][family << 4 | protocol: 1][length: uint16 BE]
 *        [addresses: 12 (INET), 36 (INET6), 216 (UNIX), or none][TLVs: type 1, length uint16 BE, value]
 *        16 + length bytes (§2.2)
 */
import { NstpError } from "../errors.ts";
import { concat, readU16BE } from "../bytes.ts";
import { IPV4_SIZE, IPV6_SIZE, formatAddress, parseDecimal, parseIPv4, parseIPv6 } from "./addresses.ts";

/** "PROXY" and its space (§2.1). */
export const V1_PREFIX = Uint8Array.from([0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]);
/** The longest v1 line, CRLF included: "PROXY UNKNOWN" with two full IPv6 addresses and ports (§2.1). */
export const V1_MAX_LINE = 107;
const CR = 0x0d;
const LF = 0x0a;

/** §2.2: the 12-byte signature of a v2 header. */
export const V2_SIGNATURE = Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
export const V2_VERSION_COMMAND_OFFSET = 12;
export const V2_FAMILY_OFFSET = 13;
export const V2_LENGTH_OFFSET = 14;
/** Signature, version/command, family/protocol, length. */
export const V2_FIXED_SIZE = 16;
export const V2_VERSION = 0x2;
export const V2_COMMAND_LOCAL = 0x0;
export const V2_COMMAND_PROXY = 0x1;
export const V2_AF_UNSPEC = 0x0;
export const V2_AF_INET = 0x1;
export const V2_AF_INET6 = 0x2;
export const V2_AF_UNIX = 0x3;
export const V2_PROTO_UNSPEC = 0x0;
export const V2_PROTO_STREAM = 0x1;
export const V2_PROTO_DGRAM = 0x2;
export const V2_PORT_SIZE = 2;
/** §2.2: 2 * 4 + 2 * 2, 2 * 16 + 2 * 2, 2 * 108. */
export const V2_INET_ADDRESSES_SIZE = 2 * IPV4_SIZE + 2 * V2_PORT_SIZE;
export const V2_INET6_ADDRESSES_SIZE = 2 * IPV6_SIZE + 2 * V2_PORT_SIZE;
export const V2_UNIX_ADDRESSES_SIZE = 2 * 108;
/** §2.2.x: a TLV's type and length before its value. */
export const V2_TLV_HEADER_SIZE = 3;
/**
 * The largest v2 header we buffer (16 + length). The spec sets no maximum below 16 + 65,535; this
 * leaves room for UNIX addresses and the TLVs HAProxy sends (ALPN, authority, unique id, SSL with a
 * client CN), and refuses before buffering anything longer.
 */
export const DEFAULT_MAX_HEADER_SIZE = 4096;

export type ProxyHeaderFailure = "malformed" | "oversized" | "truncated" | "timeout" | "untrusted" | "missing";

/** A header that is malformed, oversized, truncated, late, unexpected or absent; the connection must close. */
export class ProxyHeaderError extends NstpError {
  readonly reason: ProxyHeaderFailure;
  constructor(reason: ProxyHeaderFailure, message: string) {
    super("ERR_PROTOCOL", `PROXY header ${reason}: ${message}`);
    this.name = "ProxyHeaderError";
    this.reason = reason;
  }
}

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /**
   * "proxy": relayed for a client; "local": the proxy's own connection (v2 LOCAL, e.g. a health check)
   * or v1 UNKNOWN. Without `source` (local, UNSPEC or UNIX families) the real endpoints stand.
   */
  command: "proxy" | "local";
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** Bytes the header took on the wire. */
  length: number;
}

/** Whether `bytes` begin with a PROXY signature (v1's "PROXY " or v2's 12 bytes), or may once more arrive. */
export function signatureMatch(bytes: Uint8Array): "yes" | "no" | "maybe" {
  for (const sig of [V1_PREFIX, V2_SIGNATURE]) {
    const n = Math.min(bytes.length, sig.length);
    let i = 0;
    while (i < n && bytes[i] === sig[i]) i++;
    if (i === sig.length) return "yes";
    if (i === bytes.length) return "maybe";
  }
  return "no";
}

function malformed(message: string): never {
  throw new ProxyHeaderError("malformed", message);
}

/**
 * Parses the header at the start of `buf`: the header, or undefined if more bytes are needed (never
 * more than `maxHeaderSize` in all; beyond that it throws "oversized"). Throws ProxyHeaderError.
 */
export function parseProxyHeader(buf: Uint8Array, maxHeaderSize = DEFAULT_MAX_HEADER_SIZE): ProxyHeader | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf, maxHeaderSize);
  throw new ProxyHeaderError("missing", "the connection does not begin with a PROXY header");
}

function expectPrefix(buf: Uint8Array, sig: Uint8Array): boolean {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) malformed("bad signature");
  return buf.length >= sig.length;
}

/** §2.1: one line of printable US-ASCII ending in CRLF within 107 bytes; a lone CR or LF is refused. */
function parseV1(buf: Uint8Array): ProxyHeader | undefined {
  if (!expectPrefix(buf, V1_PREFIX)) return undefined;
  const end = Math.min(buf.length, V1_MAX_LINE);
  let crlf = -1;
  for (let i = V1_PREFIX.length; i < end; i++) {
    const c = buf[i]!;
    if (c === CR) {
      if (i + 1 >= buf.length) break;
      if (i + 1 >= V1_MAX_LINE) break;
      if (buf[i + 1] !== LF) malformed("CR without LF");
      crlf = i;
      break;
    }
    if (c === LF) malformed("LF without CR");
    if (c < 0x20 || c > 0x7e) malformed("not printable US-ASCII");
  }
  if (crlf < 0) {
    if (buf.length >= V1_MAX_LINE) throw new ProxyHeaderError("oversized", `no CRLF in the first ${V1_MAX_LINE} bytes`);
    return undefined;
  }
  const length = crlf + 2;
  const fields = String.fromCharCode(...buf.subarray(0, crlf)).split(" ");
  // §2.1: for UNKNOWN the receiver must ignore anything before the CRLF and use the real endpoints.
  if (fields[1] === "UNKNOWN") return { version: 1, command: "local", length };
  const parse = fields[1] === "TCP4" ? parseIPv4 : fields[1] === "TCP6" ? parseIPv6 : malformed("protocol must be TCP4, TCP6 or UNKNOWN");
  if (fields.length !== 6) malformed("expected exactly 6 fields separated by one space");
  const src = parse(fields[2]!), dst = parse(fields[3]!);
  const sport = parseDecimal(fields[4]!, 0xffff), dport = parseDecimal(fields[5]!, 0xffff);
  if (!src || !dst) malformed(`address not in canonical ${fields[1]} form`);
  if (sport === undefined || dport === undefined) malformed("port not a decimal in 0..65535 without heading zeroes");
  return {
    version: 1,
    command: "proxy",
    source: { address: formatAddress(src), port: sport },
    destination: { address: formatAddress(dst), port: dport },
    length,
  };
}

/** §2.2: signature, version 2, a known command, family and protocol, an address block that fits. */
function parseV2(buf: Uint8Array, maxHeaderSize: number): ProxyHeader | undefined {
  if (!expectPrefix(buf, V2_SIGNATURE) || buf.length < V2_FIXED_SIZE) return undefined;
  const verCmd = buf[V2_VERSION_COMMAND_OFFSET]!;
  const famProto = buf[V2_FAMILY_OFFSET]!;
  if (verCmd >> 4 !== V2_VERSION) malformed("version is not 2");
  const command = verCmd & 0x0f;
  if (command !== V2_COMMAND_LOCAL && command !== V2_COMMAND_PROXY) malformed("unassigned command");
  const family = famProto >> 4, protocol = famProto & 0x0f;
  if (family > V2_AF_UNIX || protocol > V2_PROTO_DGRAM) malformed("unassigned address family or protocol");
  const length = V2_FIXED_SIZE + readU16BE(buf, V2_LENGTH_OFFSET);
  // Decided from the fixed part, before buffering the rest.
  if (length > maxHeaderSize) throw new ProxyHeaderError("oversized", `${length} bytes exceed ${maxHeaderSize}`);
  if (buf.length < length) return undefined;
  // LOCAL: "the receiver must accept this connection ... and discard the protocol block" (§2.2).
  if (command === V2_COMMAND_LOCAL) return { version: 2, command: "local", length };
  if (famProto === 0x00) return { version: 2, command: "proxy", length }; // UNSPEC: use the real endpoints
  // We serve a byte stream: datagram and half-specified combinations are not ours to accept.
  if (protocol !== V2_PROTO_STREAM || family === V2_AF_UNSPEC) malformed("not a stream protocol over INET, INET6 or UNIX");
  const block = family === V2_AF_INET ? V2_INET_ADDRESSES_SIZE : family === V2_AF_INET6 ? V2_INET6_ADDRESSES_SIZE : V2_UNIX_ADDRESSES_SIZE;
  if (length - V2_FIXED_SIZE < block) malformed("address block shorter than its family needs");
  checkTlvs(buf, V2_FIXED_SIZE + block, length);
  if (family === V2_AF_UNIX) return { version: 2, command: "proxy", length };
  const size = family === V2_AF_INET ? IPV4_SIZE : IPV6_SIZE;
  const at = V2_FIXED_SIZE;
  const ports = at + 2 * size;
  return {
    version: 2,
    command: "proxy",
    source: { address: formatAddress(buf.slice(at, at + size)), port: readU16BE(buf, ports) },
    destination: { address: formatAddress(buf.slice(at + size, at + 2 * size)), port: readU16BE(buf, ports + V2_PORT_SIZE) },
    length,
  };
}

/** §2.2.x: the bytes after the addresses are TLVs that must tile the rest of the header exactly. */
function checkTlvs(buf: Uint8Array, from: number, end: number): void {
  let at = from;
  while (at < end) {
    if (at + V2_TLV_HEADER_SIZE > end) malformed("truncated TLV header");
    at += V2_TLV_HEADER_SIZE + readU16BE(buf, at + 1);
    if (at > end) malformed("TLV runs past the header");
  }
}

/**
 * Reads one header off the start of a connection, a chunk at a time, retaining at most the header's
 * bytes (bounded by `maxHeaderSize`). Returns the header and the bytes after it once complete.
 */
export class ProxyHeaderReader {
  private buf: Uint8Array = new Uint8Array(0);
  private readonly maxHeaderSize: number;

  constructor(maxHeaderSize = DEFAULT_MAX_HEADER_SIZE) {
    this.maxHeaderSize = maxHeaderSize;
  }

  /** Bytes held while the header is incomplete. */
  get buffered(): number {
    return this.buf.length;
  }

  push(chunk: Uint8Array): { header: ProxyHeader; rest: Uint8Array } | undefined {
    const all = this.buf.length ? concat(this.buf, chunk) : chunk;
    const header = parseProxyHeader(all, this.maxHeaderSize);
    if (!header) {
      // Copied: a transport may reuse the chunk's memory after this call.
      this.buf = all === chunk ? chunk.slice() : all;
      return undefined;
    }
    this.buf = new Uint8Array(0);
    return { header, rest: all.subarray(header.length) };
  }
}
