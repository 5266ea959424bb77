// The client CLI's password file: the first line is the password, whatever the editor that wrote it
// added around it (a UTF-8 byte order mark, CRLF or a lone CR): either kept would fail as ERR_AUTH.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { givenPassword, passwordFileLine } from "./password-source.ts";

test("a password file's first line, without a leading BOM or its line ending (LF, CRLF, lone CR)", () => {
  for (const text of ["pw", "pw\n", "pw\r\n", "pw\r", "\uFEFFpw", "\uFEFFpw\r\n", "\uFEFFpw\r", "pw\nsecond", "pw\r\nsecond\r\n", "pw\rsecond"]) {
    assert.equal(passwordFileLine(text), "pw", JSON.stringify(text));
  }
  // Only the ends are touched: spaces and a BOM inside are the password's own.
  assert.equal(passwordFileLine(" p w \n"), " p w ");
  assert.equal(passwordFileLine("p\uFEFFw"), "p\uFEFFw");
  assert.equal(passwordFileLine("\uFEFF\n"), "");
});

test("--password-file reads the file's bytes as UTF-8: a BOM and CRLF written by an editor are stripped; an empty first line is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "nstp-pwfile-"));
  try {
    const file = join(dir, "pw");
    writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("pässword\r\n", "utf8")]));
    assert.equal(givenPassword(undefined, file), "pässword");
    writeFileSync(file, "pässword\r");
    assert.equal(givenPassword(undefined, file), "pässword");
    writeFileSync(file, Buffer.from([0xef, 0xbb, 0xbf, 0x0d, 0x0a]));
    assert.throws(() => givenPassword(undefined, file), /the first line is empty/);
    assert.throws(() => givenPassword("x", file), /not both/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
