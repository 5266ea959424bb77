/**
 * IP addresses as the PROXY protocol carries them: strict parsers for the canonical text of version 1
 * (doc/proxy-protocol.txt §2.1: IPv4 as four decimal numbers without heading zeroes, IPv6 as groups of
 * hex digits with at most one "::"), and one text form for what we report (RFC 5952 for IPv6), so that
 * the same client gets the same key in per-address budgets whichever header version named it.
 */
export const IPV4_SIZE = 4;
export const IPV6_SIZE = 16;

/** Four decimal numbers 0..255, no heading zeroes, exactly one dot between; undefined otherwise. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== IPV4_SIZE) return undefined;
  const out = new Uint8Array(IPV4_SIZE);
  for (let i = 0; i < IPV4_SIZE; i++) {
    const n = parseDecimal(parts[i]!, 255);
    if (n === undefined) return undefined;
    out[i] = n;
  }
  return out;
}

/** A decimal integer in 0..max without sign or heading zeroes (spec §2.1: "to avoid confusion with octal"). */
export function parseDecimal(text: string, max: number): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}

/**
 * IPv6 text: 1..4 hex digits per group, at most one "::" standing for one or more zero groups, 128
 * bits in all; a trailing dotted IPv4 part (as in ::ffff:192.0.2.1) counts as two groups. No zone.
 */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // A dotted part may only end the address.
  if (halves.length === 2 && halves[0]!.includes(".")) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const out = new Uint8Array(IPV6_SIZE);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

export function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 §4: lowercase, no heading zeroes, the longest run (of 2+) of zero groups as "::" (the first if tied), IPv4-mapped as ::ffff:a.b.c.d. */
export function formatIPv6(b: Uint8Array): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${formatIPv4(b.subarray(12))}`;
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

const isMapped = (b: Uint8Array) => b.length === IPV6_SIZE && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

/** An address as bytes: 4 for IPv4 and for IPv4-mapped IPv6 (the same client either way), else 16. */
export function addressBytes(text: string): Uint8Array | undefined {
  const v4 = parseIPv4(text);
  if (v4) return v4;
  const v6 = parseIPv6(text.split("%")[0]!);
  return v6 && isMapped(v6) ? v6.slice(12) : v6;
}

/**
 * An address as a socket reports it, in the form used for budgets and logs: IPv4 as is; IPv6 in RFC
 * 5952 form, an IPv4-mapped one ("::ffff:127.0.0.1", what a dual-stack listener reports) as plain IPv4.
 * Anything unparseable is returned unchanged.
 */
export function normalizeAddress(address: string): string {
  const b = addressBytes(address);
  return b ? formatAddress(b) : address;
}

/** 4 or 16 address bytes as text; an IPv4-mapped IPv6 address as its IPv4. */
export function formatAddress(b: Uint8Array): string {
  if (b.length === IPV4_SIZE) return formatIPv4(b);
  return isMapped(b) ? formatIPv4(b.subarray(12)) : formatIPv6(b);
}
