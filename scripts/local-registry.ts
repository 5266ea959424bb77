/**
 * A registry for the @nstp scope only, on 127.0.0.1, serving `npm pack` tarballs: what lets the
 * packaging test run the README's install commands for users of the registry (`npm install
 * @nstp/client`, `npx -p @nstp/server nstp-server`, `bun add @nstp/server`) before the packages are
 * published. A project points the scope at it with `.npmrc` (`@nstp:registry=URL`), which npm and Bun
 * both read; every other package still comes from the real registry.
 *
 * It answers the two requests installs make (npm's registry API): GET /<name> (the packument, with
 * each version's manifest, taken from the tarball, and its dist.tarball, integrity and shasum) and
 * GET the tarball.
 *
 * It runs in a process of its own (`bun scripts/local-registry.ts TGZ...` prints its URL and serves
 * until its stdin closes): the packaging test waits on installs with spawnSync, which would block a
 * server in its own event loop.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename } from "node:path";

export interface LocalRegistry {
  url: string;
  stop(): void;
}

/** Starts the registry in a child process; resolves once it listens (at most 20 s). */
export function spawnLocalRegistry(tarballs: string[]): Promise<LocalRegistry> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [import.meta.filename, ...tarballs], { stdio: ["pipe", "pipe", "inherit"] });
    const timer = setTimeout(() => (child.kill("SIGKILL"), rej(new Error("the local registry did not start within 20 s"))), 20_000);
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /^(http:\S+)\n/.exec(out);
      if (m) clearTimeout(timer), res({ url: m[1]!, stop: () => void child.stdin!.end() });
    });
    child.on("exit", (code) => (clearTimeout(timer), rej(new Error(`the local registry exited with ${code}`))));
  });
}

function serveRegistry(tarballs: string[]): LocalRegistry {
  const files = new Map<string, Uint8Array>();
  const packuments = new Map<string, unknown>();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = decodeURIComponent(new URL(req.url).pathname);
      const file = files.get(path);
      if (file) return new Response(file, { headers: { "content-type": "application/octet-stream" } });
      const doc = packuments.get(path.slice(1));
      return doc ? Response.json(doc) : new Response("not found", { status: 404 });
    },
  });
  const url = `http://127.0.0.1:${server.port}/`;
  for (const tgz of tarballs) {
    const bytes = readFileSync(tgz);
    const r = spawnSync("tar", ["xzf", tgz, "-O", "package/package.json"], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`no package.json in ${tgz}: ${r.stderr}`);
    const manifest = JSON.parse(r.stdout) as { name: string; version: string };
    const tarPath = `/-/${basename(tgz)}`;
    files.set(tarPath, bytes);
    const dist = {
      tarball: new URL(tarPath.slice(1), url).href,
      shasum: createHash("sha1").update(bytes).digest("hex"),
      integrity: `sha512-${createHash("sha512").update(bytes).digest("base64")}`,
    };
    packuments.set(manifest.name, {
      name: manifest.name,
      "dist-tags": { latest: manifest.version },
      versions: { [manifest.version]: { ...manifest, _id: `${manifest.name}@${manifest.version}`, dist } },
    });
  }
  return { url, stop: () => void server.stop(true) };
}

if (import.meta.main) {
  const registry = serveRegistry(process.argv.slice(2));
  console.log(registry.url);
  process.stdin.on("end", () => (registry.stop(), process.exit(0)));
  process.stdin.resume();
}
