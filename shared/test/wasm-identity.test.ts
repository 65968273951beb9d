import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';

/**
 * On wasm, tfjs's Identity (run for every tensor kept for a backward pass) shares its input's
 * memory instead of copying it (backend/wasm-identity.ts). A shared tensor must outlive the
 * one it came from, and kept tensors must still give the right gradients.
 */
afterAll(async () => {
  await selectBackend({ force: 'cpu' });
});

describe('Identity on wasm', () => {
  it('shares memory with its input, and the copy outlives the original', async () => {
    await selectBackend({ force: 'wasm' });
    const backend = tf.backend() as unknown as { getMemoryOffset(id: tf.DataId): number };
    const x = tf.tensor1d([1, 2, 3, 4]);
    const y = tf.clone(x);
    expect(backend.getMemoryOffset(y.dataId)).toBe(backend.getMemoryOffset(x.dataId));
    x.dispose();
    expect([...y.dataSync()]).toEqual([1, 2, 3, 4]);
    const before = tf.memory().numBytes;
    y.dispose();
    expect(tf.memory().numBytes).toBe(before - 16);
  });

  it('leaves gradients through kept tensors right', async () => {
    await selectBackend({ force: 'wasm' });
    // d/dx Σ (x·x)·sin(x) = 2x·sin(x) + x²·cos(x): mul and sin keep their inputs.
    const x = tf.tensor1d([0.5, -1, 2]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.mul(v, v), tf.sin(v))))(x);
    const want = [0.5, -1, 2].map((v) => 2 * v * Math.sin(v) + v * v * Math.cos(v));
    [...g.dataSync()].forEach((got, i) => expect(got).toBeCloseTo(want[i]!, 5));
    x.dispose();
    g.dispose();
  });
});
