/**
 * `bun run build:bin`: single-file executables of the three CLIs (nstp-server, nstp-client,
 * nstp-users) for linux-x64 with `bun build --compile`, into bin/. They run from any directory with
 * no node_modules and no Bun installed.
 *
 * The worker pool needs two files at run time that no import reaches: piscina's own worker wrapper
 * (piscina starts `resolve(__dirname, "worker.js")`, a path baked in at bundle time) and the pool's
 * task module (packages/core/src/pool/worker.ts, which piscina's wrapper `require`s). Both are
 * embedded as additional entry points (Bun's documented way of shipping workers in an executable);
 * piscina's path is rewritten to the embedded wrapper and the pool is told where its task module is
 * through the NSTP_COMPILED_POOL_WORKER define.
 *
 * Usage: bun scripts/build-bin.ts [--target bun-linux-x64] [--out bin]
 */
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({ options: { target: { type: "string", default: "bun-linux-x64" }, out: { type: "string", default: join(ROOT, "bin") } } });
const out = resolve(values.out!);
mkdirSync(out, { recursive: true });

const coreRequire = createRequire(join(ROOT, "packages", "core", "package.json"));
const piscinaIndex = coreRequire.resolve("piscina"); // dist/main.js (the CommonJS entry)
const piscinaDist = dirname(piscinaIndex);
const piscinaWorker = join(piscinaDist, "worker.js");
const poolWorker = join(ROOT, "packages", "core", "src", "pool", "worker.ts");
/** Where Bun puts an extra entry point inside the executable: its path relative to `root`, as .js. */
const embedded = (file: string) => "/$bunfs/root/" + relative(ROOT, file).replace(/\.ts$/, ".js");
const PISCINA_WORKER_CALL = "(0, node_path_1.resolve)(__dirname, 'worker.js')";

const CLIS = [
  { name: "nstp-server", entry: "packages/server/src/cli.ts" },
  { name: "nstp-client", entry: "packages/client/src/cli.ts" },
  { name: "nstp-users", entry: "packages/server/src/users-cli.ts" },
];

for (const cli of CLIS) {
  const t0 = performance.now();
  const result = await Bun.build({
    entrypoints: [join(ROOT, cli.entry), poolWorker, piscinaWorker],
    root: ROOT,
    compile: { target: values.target as Bun.Build.CompileTarget, outfile: join(out, cli.name) },
    minify: true,
    define: { NSTP_COMPILED_POOL_WORKER: JSON.stringify(embedded(poolWorker)) },
    plugins: [
      {
        name: "piscina-embedded-worker",
        setup(build) {
          build.onLoad({ filter: /piscina[\\/]dist[\\/]index\.js$/ }, async (args) => {
            const text = await Bun.file(args.path).text();
            if (!text.includes(PISCINA_WORKER_CALL)) throw new Error(`piscina changed how it finds its worker (${args.path}): update scripts/build-bin.ts`);
            return { contents: text.replace(PISCINA_WORKER_CALL, JSON.stringify(embedded(piscinaWorker))), loader: "js" };
          });
        },
      },
    ],
  });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    process.exit(1);
  }
  console.log(`${cli.name}: ${join(out, cli.name)} in ${Math.round(performance.now() - t0)} ms`);
}
