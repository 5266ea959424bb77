/** Where the client CLI takes the password from: --password-file, --password (warned) or NSTP_PASSWORD. */
import { readFileSync } from "node:fs";
import { NstpError } from "@nstp/core";

/**
 * The password in a password file's text: its first line, without a leading UTF-8 byte order mark
 * (which editors on Windows write) and without the line ending, whether LF, CRLF or a lone CR. Either
 * left in would be hashed as part of the password, and the server's answer to a wrong password is
 * ERR_AUTH, which the client rightly never retries: the cause would be invisible.
 */
export function passwordFileLine(text: string): string {
  return text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/, 1)[0]!;
}

/** The password from --password-file (its first line), --password (with a warning) or NSTP_PASSWORD. */
export function givenPassword(flag: string | undefined, file: string | undefined): string | undefined {
  if (flag !== undefined && file !== undefined) throw new NstpError("ERR_INVALID_ARG", "give --password or --password-file, not both");
  if (file !== undefined) {
    const line = passwordFileLine(readFileSync(file, "utf8"));
    if (line === "") throw new NstpError("ERR_INVALID_ARG", `--password-file ${file}: the first line is empty`);
    return line;
  }
  if (flag !== undefined) {
    console.error("warning: --password is visible to other local users (ps, /proc); use --password-file FILE or NSTP_PASSWORD");
    return flag;
  }
  return process.env.NSTP_PASSWORD;
}
