/**
 * The peers allowed (and required) to send a PROXY protocol header: addresses and CIDR blocks, IPv4
 * and IPv6. An IPv4-mapped IPv6 peer ("::ffff:10.0.0.1", as a dual-stack listener reports it) is
 * matched as the IPv4 address it is.
 */
import { NstpError, proxy } from "@nstp/core";

interface Block {
  bytes: Uint8Array;
  prefix: number;
}

export class TrustedProxies {
  private readonly blocks: Block[];

  /** Entries like "127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"; anything else throws ERR_INVALID_ARG. */
  constructor(entries: readonly string[]) {
    this.blocks = entries.map((entry) => {
      const [addr, len, extra] = entry.trim().split("/");
      const bytes = addr ? proxy.addressBytes(addr) : undefined;
      const max = bytes ? bytes.length * 8 : 0;
      const prefix = len === undefined ? max : proxy.parseDecimal(len, max);
      if (!bytes || prefix === undefined || extra !== undefined) {
        throw new NstpError("ERR_INVALID_ARG", `trusted proxy "${entry}" is not an IPv4 or IPv6 address or CIDR block`);
      }
      return { bytes, prefix };
    });
  }

  /** Parses a comma-separated list (the --trusted-proxies flag). */
  static parse(list: string): TrustedProxies {
    return new TrustedProxies(list.split(",").filter((s) => s.trim() !== ""));
  }

  get size(): number {
    return this.blocks.length;
  }

  has(address: string): boolean {
    const a = proxy.addressBytes(address);
    return !!a && this.blocks.some((b) => b.bytes.length === a.length && prefixMatches(a, b.bytes, b.prefix));
  }
}

function prefixMatches(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[whole]! & mask) === (b[whole]! & mask);
}
