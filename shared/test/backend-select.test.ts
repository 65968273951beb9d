import { describe, expect, it } from 'vitest';
import { gpuLimitProblem, selectBackend, type BackendReport } from '../src/backend/select.ts';
import { decoderTensorShapes, parseDecoderConfig } from '../src/decoder/config.ts';
import { REAL_SHAPES } from '../src/decoder/shapes.ts';

const onGpu = (gpu: BackendReport['gpu']): BackendReport => ({
  backend: 'webgpu',
  tfjsBackend: 'webgpu',
  tfjsVersion: '4.22.0',
  simd: null,
  threads: 0,
  gpu,
  skipped: [],
});
/** Qwen2.5-0.5B's largest tensor: the embedding, 151,936 × 896 float32 (545 MB). */
const qwen = (() => {
  const shapes = decoderTensorShapes(parseDecoderConfig(REAL_SHAPES['qwen2.5-0.5b']));
  const [r, c] = shapes.get('model.embed_tokens.weight')!;
  return {
    largestTensor: { name: 'model.embed_tokens.weight', bytes: 4 * r! * c! },
    weightBytes: 2e9,
  };
})();

describe('a model beyond the GPU’s limits', () => {
  it('is refused for the GPU by the binding limit, naming the tensor and the adapter', () => {
    const gpu = {
      name: 'Intel UHD 620',
      memoryMiB: null,
      maxBufferBytes: 2 ** 30,
      maxBindingBytes: 128 * 2 ** 20,
    };
    expect(gpuLimitProblem(onGpu(gpu), qwen)).toBe(
      'model.embed_tokens.weight is 519 MiB, past the 128 MiB a shader may bind on Intel UHD 620',
    );
  });

  it('is refused when the weights exceed the GPU memory nvidia-smi reports', () => {
    const gpu = {
      name: 'GTX 1050',
      memoryMiB: 1024,
      maxBufferBytes: 2 ** 31,
      maxBindingBytes: 2 ** 31,
    };
    expect(gpuLimitProblem(onGpu(gpu), qwen)).toMatch(
      /the weights are 1,907 MiB, more than GTX 1050's 1,024 MiB/,
    );
  });

  it('fits where the limits allow, and off the GPU there is nothing to check', () => {
    const gpu = {
      name: 'H100',
      memoryMiB: 81_559,
      maxBufferBytes: 2 ** 32,
      maxBindingBytes: 2 ** 32,
    };
    expect(gpuLimitProblem(onGpu(gpu), qwen)).toBeNull();
    expect(gpuLimitProblem(null, qwen)).toBeNull();
    expect(gpuLimitProblem({ ...onGpu(null), backend: 'wasm' }, qwen)).toBeNull();
  });
});

describe('backend selection on this machine (no GPU)', () => {
  it('passes over WebGPU with the reason and lands on wasm', async () => {
    const report = await selectBackend();
    expect(report.backend).toBe('wasm');
    const webgpu = report.skipped.find((s) => s.backend === 'webgpu');
    expect(webgpu?.reason).toMatch(
      /no GPU device on this machine|offered no adapter|navigator\.gpu/,
    );
  });
});
