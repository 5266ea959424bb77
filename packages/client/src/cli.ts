#!/usr/bin/env node
/**
 * nstp client CLI: bun run client -- --port N --host H --user U --password-file F [--legacy] [message ...]
 * With no messages it sends the reference's five and prints each reply. The password comes from
 * --password-file, NSTP_PASSWORD, a prompt without echo, or --password (which other local users can
 * read in the process list: it warns). Exits non-zero with a one-line reason on failure.
 */
import { parseArgs } from "node:util";
import { DEFAULT_PROTOCOL, NstpError, fromHex, protocolNamed, legacy, toHex } from "@nstp/core";
import { getBackend, readPassword } from "@nstp/core/node";
import { connect } from "./connect.ts";
import { givenPassword } from "./password-source.ts";

const USAGE = `usage: client [--port N] [--host H] [--user U] [--password-file F] [--device-salt HEX] [--protocol v3|v2|legacy] [--legacy]
              [--crypto native|noble] [--keepalive SECONDS] [message ...]
Speaks protocol v3 (SPAKE2+) unless --protocol asks for v2 (Noise NNpsk0) or legacy (the Dart
reference protocol; --legacy is an alias for --protocol legacy).
Without --user, uses the reference demo user alice. The password comes from --password-file F (its
first line, without a BOM or line ending), NSTP_PASSWORD, or a prompt; --password P still works, but every local user can read it in
the process list. Without messages, sends "Hello server! Message #0" .. "#4".
--keepalive (v2, v3; default 30, 0 off): a ping after that long without sending, and ERR_TIMEOUT after
twice that long without hearing the server.`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: {
      port: { type: "string", default: String(legacy.DEMO_PORT) },
      host: { type: "string", default: "127.0.0.1" },
      user: { type: "string" },
      password: { type: "string" },
      "password-file": { type: "string" },
      "device-salt": { type: "string", default: toHex(legacy.DEMO_DEVICE_SALT) },
      legacy: { type: "boolean", default: false },
      protocol: { type: "string" },
      crypto: { type: "string", default: "native" },
      keepalive: { type: "string", default: "30" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let username = values.user;
  let password = givenPassword(values.password, values["password-file"]);
  if (username === undefined && password === undefined) {
    username = legacy.DEMO_USERNAME;
    password = legacy.DEMO_PASSWORD;
    console.error("warning: using the reference demo credentials (alice); pass --user and a password for real use");
  }
  username ??= legacy.DEMO_USERNAME;
  password ??= await readPassword(`password for ${username}: `);

  const keepalive = Number(values.keepalive);
  if (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 1_000_000) throw new NstpError("ERR_INVALID_ARG", "--keepalive must be a whole number of seconds");
  const messages = positionals.length ? positionals : Array.from({ length: 5 }, (_, i) => `Hello server! Message #${i}`);
  const session = await connect({
    host: values.host!,
    port: Number(values.port),
    username,
    password,
    deviceSalt: fromHex(values["device-salt"]!),
    protocol: protocolNamed(values.protocol ?? (values.legacy ? "legacy" : DEFAULT_PROTOCOL)).name,
    crypto: getBackend(values.crypto!),
    limits: { keepaliveMs: keepalive * 1000 },
  });
  const decoder = new TextDecoder();
  for (const m of messages) {
    const reply = await session.request(m);
    console.log(decoder.decode(reply));
  }
  await session.close();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    const reason = e instanceof NstpError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    console.error(`client: ${reason}`);
    process.exit(e instanceof NstpError && e.code === "ERR_AUTH" ? 3 : 1);
  },
);
