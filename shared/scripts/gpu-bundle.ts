/**
 * `npm run gpu:bundle [-- <out folder>]`: the device check as a self-contained folder for a
 * GPU machine with no package registry and at most 64 MiB of files carried over: Node (this
 * one, gzipped), the check (bench/gpu-check.ts and the engine) bundled by esbuild, tfjs's
 * wasm binaries, and the `webgpu` package's Dawn module for Linux x64. The check makes its
 * random models in memory, so none is carried. Refuses to finish past 60 MiB.
 */
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const LIMIT = 60 * 2 ** 20;
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'dist', 'gpu-check'));
const require = createRequire(import.meta.url);
const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// The check and everything it imports in one ES module. tfjs is CommonJS inside, so the
// bundle gets a real `require` for Node's built-ins; native and optional packages stay out.
const esm = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
} as const;
await build({
  ...esm,
  entryPoints: [path.join(root, 'shared', 'bench', 'gpu-check.ts')],
  outfile: path.join(out, 'gpu-check.mjs'),
  external: ['webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
  banner: {
    js: [
      "import { createRequire as __commonsRequire } from 'node:module';",
      "import { fileURLToPath as __commonsPath } from 'node:url';",
      'const require = __commonsRequire(import.meta.url);',
      'const __filename = __commonsPath(import.meta.url);',
      "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
    ].join(' '),
  },
});

// The weight kernels' helper thread (decoder/kernel-threads.ts) starts
// `new URL('./kernel-worker.ts', import.meta.url)`: beside the bundle, that is this file, plain
// JavaScript under the name the engine asks for (Node loads it as a module either way).
await build({
  ...esm,
  entryPoints: [path.join(root, 'shared', 'src', 'decoder', 'kernel-worker.ts')],
  outfile: path.join(out, 'kernel-worker.ts'),
});

const wasmDist = path.join(packageDir('@tensorflow/tfjs-backend-wasm'), 'dist');
mkdirSync(path.join(out, 'wasm'));
for (const file of readdirSync(wasmDist).filter((f) => f.endsWith('.wasm'))) {
  copyFileSync(path.join(wasmDist, file), path.join(out, 'wasm', file));
}

// Dawn for Linux x64 only (the lent machines), as the package lays it out, gzipped (21 MB
// unpacked); gpu-check.sh unpacks it beside the check, where Node resolves `webgpu`.
const webgpu = packageDir('webgpu');
const staging = path.join(out, '.dawn');
const dawn = path.join(staging, 'node_modules', 'webgpu');
mkdirSync(path.join(dawn, 'dist', 'linux-x64'), { recursive: true });
for (const file of ['package.json', 'index.js']) {
  copyFileSync(path.join(webgpu, file), path.join(dawn, file));
}
copyFileSync(
  path.join(webgpu, 'dist', 'linux-x64', 'dawn.node'),
  path.join(dawn, 'dist', 'linux-x64', 'dawn.node'),
);
execFileSync('tar', ['czf', path.join(out, 'dawn.tar.gz'), '-C', staging, 'node_modules']);
rmSync(staging, { recursive: true });

// This Node, bin/node alone (the rest of its folder is npm and headers).
const prefix = path.dirname(path.dirname(process.execPath));
execFileSync('tar', ['czf', path.join(out, 'node.tar.gz'), '-C', prefix, 'bin/node']);

copyFileSync(path.join(here, 'gpu-check.sh'), path.join(out, 'gpu-check.sh'));
chmodSync(path.join(out, 'gpu-check.sh'), 0o755);

const bytes = folderBytes(out);
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
if (bytes > LIMIT) {
  console.error(
    `gpu:bundle: ${out} is ${mib(bytes)}, past the ${mib(LIMIT)} a device run may carry`,
  );
  process.exit(1);
}
console.log(
  `${out}  ${mib(bytes)}  (Node ${process.version}, Dawn, tfjs wasm; run: sh ${path.relative(process.cwd(), path.join(out, 'gpu-check.sh'))})`,
);

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? folderBytes(full) : statSync(full).size;
  }
  return total;
}
