// The PROXY protocol header parser against HAProxy's doc/proxy-protocol.txt: the spec's examples and
// limits, every malformed field, truncation, oversize, and properties (chunking does not matter;
// arbitrary bytes never escape as anything but ProxyHeaderError; memory stays within the maximum).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DEFAULT_MAX_HEADER_SIZE,
  ProxyHeaderError,
  ProxyHeaderReader,
  V2_SIGNATURE,
  parseProxyHeader,
  signatureMatch,
} from "./wire.ts";
import { formatIPv6, normalizeAddress, parseIPv4, parseIPv6 } from "./addresses.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

function v2(verCmd: number, famProto: number, body: number[] | Uint8Array): Uint8Array {
  const b = Uint8Array.from(body);
  return Uint8Array.from([...V2_SIGNATURE, verCmd, famProto, b.length >> 8, b.length & 0xff, ...b]);
}
/** TCP over IPv4, 192.168.0.1:56324 -> 192.168.0.11:443, then TLVs. */
const inet = (tlvs: number[] = []) => v2(0x21, 0x11, [192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb, ...tlvs]);

function reason(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ProxyHeaderError, String(e));
    assert.equal(e.code, "ERR_PROTOCOL");
    return e.reason;
  }
  return "accepted";
}

test("v1: the spec's example line (§2.1) gives the source, and the bytes after it are left", () => {
  const r = new ProxyHeaderReader();
  const out = r.push(ascii("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n"));
  assert.ok(out);
  assert.deepEqual(out.header, {
    version: 1,
    command: "proxy",
    source: { address: "192.168.0.1", port: 56324 },
    destination: { address: "192.168.0.11", port: 443 },
    length: 47,
  });
  assert.equal(new TextDecoder().decode(out.rest), "GET / HTTP/1.1\r\n");
});

test("v1: the spec's longest lines (56, 104 and 107 bytes) and the short UNKNOWN (15) are accepted", () => {
  const f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const lines = [
    "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
    `PROXY TCP6 ${f} ${f} 65535 65535\r\n`,
    "PROXY UNKNOWN\r\n",
    `PROXY UNKNOWN ${f} ${f} 65535 65535\r\n`,
  ];
  assert.deepEqual(lines.map((l) => l.length), [56, 104, 15, 107]);
  const h = lines.map((l) => parseProxyHeader(ascii(l)));
  assert.deepEqual(h[0]?.source, { address: "255.255.255.255", port: 65535 });
  assert.deepEqual(h[1]?.source, { address: f, port: 65535 });
  assert.deepEqual([h[2]?.command, h[2]?.source], ["local", undefined]);
  assert.deepEqual([h[3]?.command, h[3]?.length], ["local", 107]);
});

test("v1: IPv6 sources are reported in one canonical form; an IPv4-mapped one as IPv4", () => {
  const src = (a: string) => parseProxyHeader(ascii(`PROXY TCP6 ${a} ::1 1 2\r\n`))?.source?.address;
  assert.equal(src("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  assert.equal(src("::ffff:127.0.0.2"), "127.0.0.2");
  assert.equal(src("::FFFF:7F00:3"), "127.0.0.3");
});

test("v1: every departure from the exact line is malformed", () => {
  for (const line of [
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n", // LF alone
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX", // CR alone
    "PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", // two spaces
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324  443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n", // a field missing
    "PROXY TCP4 192.168.00.1 192.168.0.11 56324 443\r\n", // heading zero
    "PROXY TCP4 192.168.0.256 192.168.0.11 56324 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",
    "PROXY TCP4 ::1 ::1 1 2\r\n", // family mismatch
    "PROXY TCP6 127.0.0.1 ::1 1 2\r\n",
    "PROXY TCP6 1::2::3 ::1 1 2\r\n",
    "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
    "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
    "PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
    "PROXY UNKNOWNX\r\n",
    "PROXY TCP4 1.2.3.4 1.2.3.4 1 2\x00\r\n", // not printable
    "PROXZ TCP4 1.2.3.4 1.2.3.4 1 2\r\n", // signature
  ]) {
    assert.equal(reason(() => parseProxyHeader(ascii(line))), "malformed", JSON.stringify(line));
  }
});

test("v1: no CRLF within 107 bytes is oversized; a line still arriving is incomplete", () => {
  assert.equal(reason(() => parseProxyHeader(ascii("PROXY UNKNOWN " + "x".repeat(93)))), "oversized");
  assert.equal(reason(() => parseProxyHeader(ascii("PROXY UNKNOWN " + "x".repeat(92) + "\r\n"))), "oversized");
  assert.equal(parseProxyHeader(ascii("PROXY UNKNOWN " + "x".repeat(91) + "\r\n"))?.length, 107);
  assert.equal(parseProxyHeader(ascii("PROXY UNKNOWN " + "x".repeat(92))), undefined);
  assert.equal(parseProxyHeader(ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r")), undefined);
  assert.equal(parseProxyHeader(ascii("PRO")), undefined);
});

test("v2: TCP over IPv4 and IPv6 give the source; TLVs within the length are skipped", () => {
  const r = inet([0x04, 0x00, 0x02, 0xaa, 0xbb, 0x05, 0x00, 0x00]);
  const h = parseProxyHeader(Uint8Array.from([...r, 0x00, 0x4e]));
  assert.deepEqual(h, {
    version: 2,
    command: "proxy",
    source: { address: "192.168.0.1", port: 56324 },
    destination: { address: "192.168.0.11", port: 443 },
    length: r.length,
  });
  const six = new Uint8Array(36);
  six.set([0x20, 0x01, 0x0d, 0xb8], 0);
  six[15] = 1;
  six[31] = 1; // ::1
  six.set([0x30, 0x39, 0x1f, 0x90], 32);
  const h6 = parseProxyHeader(v2(0x21, 0x21, six));
  assert.deepEqual(h6?.source, { address: "2001:db8::1", port: 12345 });
  assert.deepEqual(h6?.destination, { address: "::1", port: 8080 });
});

test("v2: LOCAL (health checks), UNSPEC and UNIX keep the real endpoints; the length is always skipped", () => {
  assert.deepEqual(parseProxyHeader(v2(0x20, 0x00, [])), { version: 2, command: "local", length: 16 });
  // §2.2: "must not assume zero is presented for LOCAL connections".
  assert.deepEqual(parseProxyHeader(v2(0x20, 0x11, new Uint8Array(12))), { version: 2, command: "local", length: 28 });
  assert.deepEqual(parseProxyHeader(v2(0x21, 0x00, [1, 2, 3])), { version: 2, command: "proxy", length: 19 });
  assert.deepEqual(parseProxyHeader(v2(0x21, 0x31, new Uint8Array(216))), { version: 2, command: "proxy", length: 232 });
});

test("v2: bad signature, version, command, family, protocol, address length or TLV is malformed", () => {
  const bad = [
    Uint8Array.from([...V2_SIGNATURE.subarray(0, 11), 0x0b, 0x21, 0x11, 0, 0]),
    v2(0x11, 0x11, new Uint8Array(12)), // version 1
    v2(0x22, 0x11, new Uint8Array(12)), // command 2
    v2(0x21, 0x41, new Uint8Array(12)), // family 4
    v2(0x21, 0x13, new Uint8Array(12)), // protocol 3
    v2(0x21, 0x12, new Uint8Array(12)), // UDP: not a stream
    v2(0x21, 0x01, new Uint8Array(12)), // UNSPEC family with STREAM
    v2(0x21, 0x11, new Uint8Array(11)), // short IPv4 block
    v2(0x21, 0x21, new Uint8Array(35)),
    v2(0x21, 0x31, new Uint8Array(215)),
    inet([0x04, 0x00]), // truncated TLV header
    inet([0x04, 0x00, 0x03, 0xaa]), // TLV past the end
  ];
  for (const h of bad) assert.equal(reason(() => parseProxyHeader(h)), "malformed", Buffer.from(h).toString("hex"));
});

test("v2: a length beyond the maximum is refused from the fixed 16 bytes, before buffering the rest", () => {
  const fixed = Uint8Array.from([...V2_SIGNATURE, 0x21, 0x11, 0xff, 0xff]);
  assert.equal(reason(() => new ProxyHeaderReader().push(fixed)), "oversized");
  const atMax = v2(0x21, 0x11, new Uint8Array(DEFAULT_MAX_HEADER_SIZE - 16).fill(0).map((_, i) => (i < 12 ? 1 : 0)));
  // Address block, then zero-filled TLVs of type 0 length 0: exactly the maximum is fine.
  const tlvRest = DEFAULT_MAX_HEADER_SIZE - 16 - 12;
  assert.equal(tlvRest % 3, 0);
  assert.equal(parseProxyHeader(atMax)?.length, DEFAULT_MAX_HEADER_SIZE);
  assert.equal(reason(() => parseProxyHeader(atMax, DEFAULT_MAX_HEADER_SIZE - 1)), "oversized");
});

test("a connection that does not begin with a header is refused; signatures are recognised byte by byte", () => {
  assert.equal(reason(() => parseProxyHeader(Uint8Array.from([0x00, 0x4e, 0x53, 0x54, 0x50, 0x02]))), "missing");
  assert.equal(signatureMatch(ascii("PROXY ")), "yes");
  assert.equal(signatureMatch(ascii("PROX")), "maybe");
  assert.equal(signatureMatch(V2_SIGNATURE), "yes");
  assert.equal(signatureMatch(V2_SIGNATURE.subarray(0, 5)), "maybe");
  assert.equal(signatureMatch(Uint8Array.from([0x05, 0x61])), "no");
  assert.equal(signatureMatch(ascii("PROXIMA")), "no");
  assert.equal(signatureMatch(Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0b])), "no");
});

test("addresses: strict IPv4 and IPv6 text, RFC 5952 output (checked against the WHATWG URL serializer)", () => {
  assert.deepEqual(parseIPv4("10.0.0.1"), Uint8Array.from([10, 0, 0, 1]));
  for (const bad of ["10.0.0", "10.0.0.01", "10.0.0.1.", "1e1.0.0.1", "+1.0.0.1", ""]) assert.equal(parseIPv4(bad), undefined, bad);
  for (const bad of ["", ":", ":::", "1:2:3:4:5:6:7", "1::2::3", "12345::", "::g", "1:2:3:4:5:6:7:8::", "::1.2.3.4:5"]) assert.equal(parseIPv6(bad), undefined, bad);
  assert.equal(normalizeAddress("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(normalizeAddress("0:0:0:0:0:0:0:1"), "::1");
  assert.equal(normalizeAddress("127.0.0.1"), "127.0.0.1");
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (b, sparse) => {
      if (sparse) for (let i = 0; i < 16; i++) if (b[i]! % 3 !== 0) b[i] = 0;
      if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return;
      const text = formatIPv6(b);
      assert.deepEqual(parseIPv6(text), b);
      assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1));
    }),
    { numRuns: 300 },
  );
});

test("property: any chunking of a header and its payload gives the same header and the same bytes after it", () => {
  const headers = [inet([0x04, 0x00, 0x01, 0x00]), ascii("PROXY TCP6 2001:db8::7 ::1 40000 8080\r\n"), ascii("PROXY UNKNOWN\r\n"), v2(0x20, 0x00, [])];
  fc.assert(
    fc.property(fc.constantFrom(...headers), fc.uint8Array({ maxLength: 40 }), fc.array(fc.nat(), { maxLength: 8 }), (h, payload, cuts) => {
      const all = Uint8Array.from([...h, ...payload]);
      const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
      const r = new ProxyHeaderReader();
      let got: ReturnType<ProxyHeaderReader["push"]>;
      let prev = 0;
      const rest: number[] = [];
      for (const p of [...points, all.length]) {
        const piece = all.subarray(prev, p);
        prev = p;
        if (got) rest.push(...piece);
        else if ((got = r.push(piece))) rest.push(...got.rest);
      }
      assert.ok(got, "header complete");
      assert.deepEqual(got.header, parseProxyHeader(h));
      assert.deepEqual(Uint8Array.from(rest), payload);
    }),
    { numRuns: 300 },
  );
});

test("property: arbitrary bytes after a signature end as a header, a wait, or a ProxyHeaderError, within the bound", () => {
  const prefix = fc.constantFrom(V2_SIGNATURE, ascii("PROXY "), Uint8Array.of(0x50), new Uint8Array(0));
  fc.assert(
    fc.property(prefix, fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 30 }), (p, chunks) => {
      const r = new ProxyHeaderReader(512);
      try {
        r.push(p);
        for (const c of chunks) {
          if (r.push(c)) return;
          assert.ok(r.buffered < 512);
        }
      } catch (e) {
        assert.ok(e instanceof ProxyHeaderError, String(e));
      }
    }),
    { numRuns: 500 },
  );
});
