// The published v3 known-answer vectors (docs/vectors/nstp-v3-kat.json): rebuilt from the machines
// on both backends and compared with the file, and their key steps re-derived with node:crypto alone
// (PBKDF2, HKDF, AES-GCM), so the file's descriptions are checked as well as its bytes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createDecipheriv, hkdfSync, pbkdf2Sync } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { BACKENDS } from "../crypto/index.ts";
import { buildV3Kat, type V3Kat } from "../testing/v3-kat.ts";

const file = fileURLToPath(new URL("../../../../docs/vectors/nstp-v3-kat.json", import.meta.url));
const published = JSON.parse(readFileSync(file, "utf8")) as V3Kat;
const b = (hex: unknown) => Buffer.from(hex as string, "hex");

describe("v3 known-answer vectors", () => {
  for (const crypto of Object.values(BACKENDS)) {
    test(`the ${crypto.name} backend rebuilds the published file exactly`, { timeout: 60_000 }, async () => {
      assert.deepEqual(await buildV3Kat(crypto), published);
    });
  }

  test("key steps re-derived with node:crypto only", () => {
    const { inputs, keys, handshake, transport } = published;
    const salt = Buffer.concat([b(inputs.deviceSalt), b(inputs.usernameHex)]);
    assert.equal(pbkdf2Sync(inputs.password as string, salt, inputs.pbkdf2Iterations as number, 32, "sha256").toString("hex"), keys.psk);
    assert.equal(Buffer.from(hkdfSync("sha256", b(keys.psk), Buffer.alloc(0), b(keys.w0w1Info), 80)).toString("hex"), keys.w0w1Okm);
    assert.equal(Buffer.from(hkdfSync("sha256", b(handshake.K_shared), Buffer.alloc(0), Buffer.from("nstp/3 transport"), 64)).toString("hex"), transport.transportOkm);
    assert.equal(handshake.clientFirstFlight, handshake.preamble! + handshake.message1);
    assert.equal(handshake.message2, "0061" + handshake.shareV + handshake.confirmV);
    assert.equal(handshake.message3, "0020" + handshake.confirmP);
    const open = (key: string, frame: string) => {
      const f = b(frame);
      assert.equal(f.readUInt16BE(0), f.length - 2);
      const d = createDecipheriv("aes-256-gcm", b(key), Buffer.alloc(12));
      d.setAuthTag(f.subarray(f.length - 16));
      return Buffer.concat([d.update(f.subarray(2, f.length - 16)), d.final()]).toString("hex");
    };
    assert.equal(open(transport.k_c2s as string, transport.clientFirstFrame as string), transport.clientFirstFramePlaintext);
    assert.equal(open(transport.k_s2c as string, transport.serverFirstFrame as string), transport.serverFirstFramePlaintext);
  });
});
