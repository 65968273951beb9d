import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `npm run gpu:bundle` and the gpu-check.sh it carries, built and run here the way a lent GPU
 * machine would run them (this machine has no GPU: the check must say so and measure wasm).
 */
const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const SMALL = ['--shapes', 'tiny', '--prompt', '24', '--new', '4', '--lora-seq', '16'];

let out: string;
beforeAll(async () => {
  out = path.join(await mkdtemp(path.join(tmpdir(), 'commons-gpu-bundle-')), 'gpu-check');
  await run(process.execPath, [path.join(ROOT, 'shared/scripts/gpu-bundle.ts'), out], {
    cwd: ROOT,
  });
}, 120_000);
afterAll(async () => {
  if (out) await rm(path.dirname(out), { recursive: true, force: true });
});

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? await folderBytes(full) : (await stat(full)).size;
  }
  return total;
}

describe('the GPU device check bundle', () => {
  it('fits in 60 MiB with Node, Dawn, the bundled check and tfjs wasm', async () => {
    expect(await folderBytes(out)).toBeLessThanOrEqual(60 * 2 ** 20);
    expect((await readdir(out)).sort()).toEqual(
      [
        'dawn.tar.gz',
        'gpu-check.mjs',
        'gpu-check.sh',
        'kernel-worker.ts',
        'node.tar.gz',
        'wasm',
      ].sort(),
    );
    // The weight kernels' helper thread, bundled on its own: it loads, and refuses to run
    // outside a worker thread, which is how the engine starts it.
    const helper = await run(process.execPath, [path.join(out, 'kernel-worker.ts')]).catch(
      (error: { stderr: string }) => error,
    );
    expect(helper.stderr).toMatch(/kernel-worker.ts must run in a worker thread/);
  });

  it('runs with its own Node, prints one JSON object, and says why no GPU was used', async () => {
    // A PATH without this Node: the check must bring its own.
    const { stdout, stderr } = await run('sh', [path.join(out, 'gpu-check.sh'), ...SMALL], {
      env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
      timeout: 120_000,
    });
    const report = JSON.parse(stdout); // stdout is the JSON alone
    expect(report.check).toBe('commons gpu-check');
    expect(report.node).toBe(process.version);
    expect(report.backend).toBe('wasm');
    expect(report.gpu).toBeNull();
    const webgpu = report.skipped.find((s: { backend: string }) => s.backend === 'webgpu');
    expect(webgpu.reason).toMatch(/no GPU device|no adapter/);
    const [tiny] = report.shapes;
    expect(tiny.shape).toBe('tiny');
    for (const key of ['prefillTokensPerSec', 'decodeTokensPerSec', 'loraTrainTokensPerSec']) {
      expect(tiny[key]).toBeGreaterThan(0);
      expect(Number.isFinite(tiny[key])).toBe(true);
    }
    // On wasm the baseline is the run itself.
    expect(report.wasm).toEqual(tiny);
    expect(report.trainingOverWasm).toBe(1);
    expect(stderr).toMatch(/gpu-check: backend wasm/);
  }, 120_000);

  it('loads Dawn from the bundle when WebGPU is asked for, and names why it cannot start', async () => {
    const failed = await run(
      'sh',
      [path.join(out, 'gpu-check.sh'), '--backend', 'webgpu', ...SMALL],
      {
        env: { PATH: '/usr/bin:/bin' },
        timeout: 120_000,
      },
    ).catch((error: { code: number; stdout: string; stderr: string }) => error);
    expect('code' in failed && failed.code).toBe(1);
    expect(failed.stdout).toBe('');
    // "no adapter" means dawn.node loaded and looked (no Vulkan device here).
    expect(failed.stderr).toMatch(/webgpu: navigator\.gpu offered no adapter/);
  }, 120_000);
});
