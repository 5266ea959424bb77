/**
 * The packaging test (issue 14), run by the test command: the packages as a user gets them.
 *
 * 1. `npm pack` each published package (core, server, client); the tarballs must hold dist, src,
 *    LICENSE and package.json and no test, test helper, fixture or bench result.
 * 2. Into a fresh project in the system's temporary directory (no workspace above it), install the
 *    packages as the README tells users to, three ways: npm under Node 22 (the registry's `node@22`,
 *    installed beside the test), npm under the project's Node 24, and `bun add`. In each: import the
 *    public API and run `startServer` + `connect` (with a worker pool) to an echo; start the
 *    `nstp-server` bin and talk to it with the `nstp-client` bin (under Bun: `bunx --bun`); add a
 *    user with `nstp-users` into a SQLite database (node:sqlite on Node, bun:sqlite on Bun). Then
 *    `npx -p @nstp/server nstp-server` and `npx -p @nstp/client nstp-client` from an empty directory.
 * 3. Bundle the installed core root and its noble backend for the browser: no `node:` import.
 * 4. The single-file executables (scripts/build-bin.ts), copied into an empty directory and run with
 *    a PATH holding no JavaScript runtime: server and client against each other, and nstp-users
 *    (whose key derivation runs in the embedded worker pool).
 *
 * The tarballs stand in for the registry: a registry for the @nstp scope on 127.0.0.1
 * (scripts/local-registry.ts) serves them, named in each project's `.npmrc`, so the commands are the
 * README's own (`npm install @nstp/client`, not a path). Third-party dependencies come from the real
 * registry (npm's cache is warm after the first run). Every process is bounded in time.
 *
 * Usage: bun scripts/packaging.ts [--no-build]. Ends with "packaging: N passed, N failed".
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type LocalRegistry, spawnLocalRegistry } from "./local-registry.ts";

const ROOT = resolve(import.meta.dir, "..");
const BIN = join(ROOT, "node_modules", ".bin");
const PACKAGES = ["core", "server", "client"] as const;
/** The older supported Node line, from the registry's `node` package (pinned like every dependency). */
const NODE22 = "22.23.3";
const NODE22_DIR = join(tmpdir(), `nstp-node${NODE22}`);
const MESSAGE = "ping from the packed packages";

let passed = 0, failed = 0;
/** Records a check; `failure` (a command's output) is shown only when it failed, `info` always. */
function check(name: string, ok: boolean, failure = "", info = ""): boolean {
  const detail = [info, ok ? "" : failure].filter(Boolean).join("; ");
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? `: ${detail}` : ""}`);
  ok ? passed++ : failed++;
  return ok;
}

function sh(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number }) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, input: opts.input, encoding: "utf8", timeout: opts.timeoutMs ?? 120_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}` };
}

/** Starts a server command; resolves with its port once it says it listens (at most 20 s). */
function startServerCommand(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((res, rej) => {
    // A process group of its own: npx runs the server as its child and does not pass SIGTERM on.
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    const timer = setTimeout(() => (signalGroup(child, "SIGKILL"), rej(new Error(`no "listening on" within 20 s: ${out}`))), 20_000);
    const onData = (d: Buffer) => {
      out += d;
      const m = /listening on [^:\s]+:(\d+)/.exec(out);
      if (m) clearTimeout(timer), res({ child, port: Number(m[1]) });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("error", (e) => (clearTimeout(timer), rej(e)));
    child.on("exit", (code) => (clearTimeout(timer), rej(new Error(`exited with ${code}: ${out}`))));
  });
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // the group has already gone
  }
}

/** Ends the server command's whole process group: SIGTERM, then SIGKILL after 5 s. */
function stop(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    const t = setTimeout(() => (signalGroup(child, "SIGKILL"), res()), 5000);
    const done = () => (clearTimeout(t), signalGroup(child, "SIGKILL"), res());
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.on("exit", done);
    signalGroup(child, "SIGTERM");
  });
}

/** A server command and a client command against it; the client must print the echo of its message. */
async function serverAndClient(name: string, server: string[], client: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  let child: ChildProcess | undefined;
  try {
    const s = await startServerCommand(server[0]!, [...server.slice(1), "--port", "0"], cwd, env);
    child = s.child;
    const r = sh(client[0]!, [...client.slice(1), "--port", String(s.port), MESSAGE], { cwd, env: { ...env, NSTP_PASSWORD: "userpassword" }, timeoutMs: 30_000 });
    check(name, r.ok && r.out.includes(`Server received: ${MESSAGE}`), r.ok ? "" : r.out.slice(-400));
  } catch (e) {
    check(name, false, (e as Error).message.slice(-400));
  } finally {
    if (child) await stop(child);
  }
}

const APP = `import { startServer, demoKeyStore } from "@nstp/server";
import { connect } from "@nstp/client";
import { legacy } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { CryptoPool } from "@nstp/core/pool";
const keys = await demoKeyStore(nativeBackend, legacy.DEMO_DEVICE_SALT);
const server = await startServer({ keys, port: 0, handler: (msg) => msg });
const pool = new CryptoPool({ threads: 1 });
const session = await connect({ host: "127.0.0.1", port: server.port, username: legacy.DEMO_USERNAME,
  password: legacy.DEMO_PASSWORD, deviceSalt: legacy.DEMO_DEVICE_SALT, pool });
const reply = new TextDecoder().decode(await session.request(${JSON.stringify(MESSAGE)}));
await session.close();
await server.close({ graceMs: 0 });
await pool.destroy();
console.log("echo: " + reply);
`;
/** A TypeScript consumer of every entry point, checked against the packages' declarations. */
const TYPED_APP = `import { connect, type Session } from "@nstp/client";
import { startServer, demoKeyStore, type RunningServer } from "@nstp/server";
import { legacy, v2, v3, NstpError, type CryptoBackend, type Transport } from "@nstp/core";
import { nativeBackend } from "@nstp/core/crypto/native";
import { nobleBackend } from "@nstp/core/crypto/noble";
import { CryptoPool } from "@nstp/core/pool";
import { createLogger, defaultTransport } from "@nstp/core/node";
import { bunTransport } from "@nstp/core/bun";
const backend: CryptoBackend = nobleBackend;
const transport: Transport = process.versions.bun ? bunTransport : await defaultTransport();
const server: RunningServer = await startServer({ keys: await demoKeyStore(nativeBackend, legacy.DEMO_DEVICE_SALT), port: 0, transport, logger: createLogger() });
const session: Session = await connect({ host: "127.0.0.1", port: server.port, username: "alice", password: "userpassword", deviceSalt: legacy.DEMO_DEVICE_SALT, pool: new CryptoPool() });
const error: NstpError = new NstpError("ERR_AUTH", "typed");
export { backend, session, error, v2, v3 };
`;
const TSCONFIG = (typeRoots: string) => JSON.stringify({
  compilerOptions: { target: "ES2023", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, skipLibCheck: false, types: ["node"], typeRoots: [typeRoots] },
  files: ["app.ts"],
});
const BROWSER_ENTRY = `export * from "@nstp/core";\nexport { nobleBackend } from "@nstp/core/crypto/noble";\n`;
const NODE_IMPORT = /\bfrom\s*["']node:|\brequire\(["']node:|\bimport\(["']node:/;

const work = mkdtempSync(join(tmpdir(), "nstp-packaging-"));
const t0 = performance.now();
let registry: LocalRegistry | undefined;
try {
  if (!process.argv.includes("--no-build")) {
    const b = sh(join(BIN, "bun"), ["run", "build", "--output-logs=errors-only"], { cwd: ROOT, timeoutMs: 300_000 });
    check("bun run build", b.ok, b.out.slice(-800));
  }

  // 1. npm pack, and what the tarballs hold.
  const packDir = join(work, "pack");
  mkdirSync(packDir);
  const tarballs: string[] = [];
  for (const p of PACKAGES) {
    const r = sh("npm", ["pack", "--pack-destination", packDir, "--loglevel=error"], { cwd: join(ROOT, "packages", p) });
    const file = join(packDir, `nstp-${p}-0.1.0.tgz`);
    if (!check(`npm pack @nstp/${p}`, r.ok && existsSync(file), r.out.slice(-400))) continue;
    tarballs.push(file);
    const list = sh("tar", ["tzf", file], { cwd: work }).out.split("\n").filter(Boolean);
    const forbidden = list.filter((f) => /\.test\.[cm]?[jt]s|\/testing\/|fixtures|bench|results|\.tsbuildinfo/.test(f));
    const required = ["package/package.json", "package/LICENSE", "package/dist/index.js", "package/dist/index.d.ts", "package/src/index.ts"];
    const missing = required.filter((f) => !list.includes(f));
    check(`@nstp/${p} tarball holds no tests, fixtures or bench results, and its dist, src and LICENSE`, forbidden.length === 0 && missing.length === 0,
      `forbidden: ${forbidden.slice(0, 5).join(", ")}; missing: ${missing.join(", ")}`, `${(statSync(file).size / 1024).toFixed(1)} KiB, ${list.length} files`);
  }

  // 2. Node 22 from the registry, beside the test (not in the workspace); kept for the next run.
  const node22 = join(NODE22_DIR, "node_modules", ".bin", "node");
  if (!existsSync(node22)) {
    mkdirSync(NODE22_DIR, { recursive: true });
    writeFileSync(join(NODE22_DIR, "package.json"), JSON.stringify({ private: true }));
    sh("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", `node@${NODE22}`], { cwd: NODE22_DIR, timeoutMs: 300_000 });
  }
  check(`node@${NODE22} from the registry`, sh(node22, ["--version"], { cwd: work }).out.trim() === `v${NODE22}`);

  registry = await spawnLocalRegistry(tarballs);
  const envs = [
    { name: `npm + Node ${NODE22}`, kind: "npm", binDir: join(NODE22_DIR, "node_modules", ".bin") },
    { name: "npm + Node 24", kind: "npm", binDir: BIN },
    { name: "bun add + Bun", kind: "bun", binDir: BIN },
  ] as const;
  for (const e of envs) {
    const app = join(work, `app-${e.kind}-${envs.indexOf(e)}`);
    mkdirSync(app);
    // The runtime under test first on PATH: the bins' `#!/usr/bin/env node` finds it, and npm runs on it.
    const env = { ...process.env, PATH: `${e.binDir}:${process.env.PATH}` };
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "nstp-packaging-app", private: true, type: "module" }, null, 2));
    writeFileSync(join(app, ".npmrc"), `@nstp:registry=${registry.url}\n`);
    writeFileSync(join(app, "app.mjs"), APP);
    const names = PACKAGES.map((p) => `@nstp/${p}`);
    const install = e.kind === "npm"
      ? sh("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", ...names], { cwd: app, env, timeoutMs: 300_000 })
      : sh(join(BIN, "bun"), ["add", ...names], { cwd: app, env, timeoutMs: 300_000 });
    if (!check(`${e.name}: install ${names.join(" ")}`, install.ok, install.out.slice(-400))) continue;
    const runtime = e.kind === "npm" ? join(e.binDir, "node") : join(BIN, "bun");
    const run = sh(runtime, ["app.mjs"], { cwd: app, env, timeoutMs: 60_000 });
    check(`${e.name}: startServer + connect (with a pool) echo`, run.ok && run.out.includes(`echo: ${MESSAGE}`), run.out.slice(-400));
    const bin = (name: string) => (e.kind === "npm" ? [join(app, "node_modules", ".bin", name)] : [join(BIN, "bunx"), "--bun", name]);
    await serverAndClient(`${e.name}: nstp-server and nstp-client bins echo`, bin("nstp-server"), bin("nstp-client"), app, env);
    const users = sh(bin("nstp-users")[0]!, [...bin("nstp-users").slice(1), "add", "carol", "--file", join(app, "users.db")], { cwd: app, env, input: "carols password\n", timeoutMs: 60_000 });
    const listed = sh(bin("nstp-users")[0]!, [...bin("nstp-users").slice(1), "list", "--file", join(app, "users.db")], { cwd: app, env });
    check(`${e.name}: nstp-users add and list (SQLite)`, users.ok && listed.ok && /\bcarol\b/.test(listed.out), (users.out + listed.out).slice(-400));
    if (e.kind === "npm" && e.binDir === BIN) {
      // The declarations, as a TypeScript app on Node sees them (with skipLibCheck off).
      writeFileSync(join(app, "app.ts"), TYPED_APP);
      writeFileSync(join(app, "tsconfig.json"), TSCONFIG(join(ROOT, "node_modules", "@types")));
      const tsc = sh(join(BIN, "tsc"), ["-p", "tsconfig.json"], { cwd: app, env });
      check("a TypeScript app type-checks against the installed declarations of every entry point", tsc.ok, tsc.out.slice(-800));
      // 3. The installed root (dist, through "import") bundles for the browser.
      writeFileSync(join(app, "browser.mjs"), BROWSER_ENTRY);
      const b = sh(join(BIN, "bun"), ["build", "--target=browser", "--format=esm", "--external", "node:*", "browser.mjs", "--outfile", "browser-bundle.js"], { cwd: app, env });
      const text = b.ok ? await Bun.file(join(app, "browser-bundle.js")).text() : "";
      check("installed @nstp/core root + noble bundle for the browser with no node: import", b.ok && !NODE_IMPORT.test(text) && text.includes("Noise_NNpsk0_25519_AESGCM_SHA256"), b.out.slice(-400));
    }
  }

  // `npx -p`: the server and client from an empty directory, nothing installed there.
  const npxDir = join(work, "npx");
  mkdirSync(npxDir);
  writeFileSync(join(npxDir, ".npmrc"), `@nstp:registry=${registry.url}\n`);
  // A cache of its own: npx reuses an earlier install of the same version from its cache.
  const npxEnv = { ...process.env, PATH: `${BIN}:${process.env.PATH}`, npm_config_cache: join(work, "npx-cache") };
  await serverAndClient("npx -p @nstp/server nstp-server and npx -p @nstp/client nstp-client echo",
    ["npx", "-y", "-p", "@nstp/server", "nstp-server"], ["npx", "-y", "-p", "@nstp/client", "nstp-client"], npxDir, npxEnv);

  // 4. The single-file executables, from an empty directory, with no JavaScript runtime on PATH.
  const binDir = join(work, "bin");
  const built = sh(join(BIN, "bun"), [join(ROOT, "scripts", "build-bin.ts"), "--out", binDir], { cwd: ROOT, timeoutMs: 300_000 });
  if (check("bun run build:bin (linux-x64)", built.ok, built.out.slice(-400))) {
    const empty = join(work, "empty");
    mkdirSync(empty);
    for (const f of readdirSync(binDir)) copyFileSync(join(binDir, f), join(empty, f));
    const bare = { PATH: "/usr/bin:/bin", HOME: empty };
    const sizes = readdirSync(empty).map((f) => `${f} ${(statSync(join(empty, f)).size / 2 ** 20).toFixed(1)} MiB`).join(", ");
    const noRuntime = sh("sh", ["-c", "! command -v bun && ! command -v node || test \"$(command -v node)\" = /usr/bin/node"], { cwd: empty, env: bare }).ok;
    check("the executables' directory has no node_modules and PATH no Bun", noRuntime && !existsSync(join(empty, "node_modules")), "", sizes);
    await serverAndClient("compiled nstp-server and nstp-client echo", [join(empty, "nstp-server")], [join(empty, "nstp-client")], empty, bare);
    const users = sh(join(empty, "nstp-users"), ["add", "dave", "--file", join(empty, "users.json")], { cwd: empty, env: bare, input: "daves password\n", timeoutMs: 60_000 });
    check("compiled nstp-users add (PBKDF2 in the embedded worker pool)", users.ok && existsSync(join(empty, "users.json")), users.out.slice(-400));
  }
} finally {
  registry?.stop();
  rmSync(work, { recursive: true, force: true });
}
console.log(`packaging: ${passed} passed, ${failed} failed (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
