/**
 * The quick-start demo: a Bun server on a free loopback port and the client sending the reference's
 * five messages, then the server is stopped.
 */
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const bun = process.execPath;
const server = spawn(bun, [join(root, "packages/server/src/cli.ts"), "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
const stop = () => server.kill("SIGTERM");
const deadline = setTimeout(() => {
  console.error("demo: the server did not start within 20 s");
  stop();
  process.exit(1);
}, 20_000);

let out = "";
server.stdout!.on("data", (d: Buffer) => {
  out += d;
  const m = /listening on ([^\s]+):(\d+)/.exec(out);
  if (!m) return;
  clearTimeout(deadline);
  server.stdout!.removeAllListeners("data");
  console.log(`demo: server listening on ${m[1]}:${m[2]}; running the client`);
  const client = spawn(bun, [join(root, "packages/client/src/cli.ts"), "--port", m[2]!, "--legacy"], { stdio: "inherit" });
  client.on("exit", (code) => {
    stop();
    process.exit(code ?? 1);
  });
});
server.on("exit", (code) => {
  if (!/listening on/.test(out)) {
    console.error(`demo: the server exited with ${code}`);
    process.exit(1);
  }
});
