import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import { filledTensor, readValues } from '../src/backend/host-values.ts';

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe.each(['wasm', 'cpu'] as const)('tensor values in host memory on %s', (backend) => {
  it('reads a tensor as it is, and fills a new one that tfjs then computes with and frees', async () => {
    await selectBackend({ force: backend });
    const before = tf.memory();
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const sum = tf.add(x, 1);
    expect([...readValues(sum)]).toEqual([2, 3, 4, 5, 6, 7]);
    const y = filledTensor<tf.Rank.R2>([3, 2], (values) => {
      const xs = readValues(x);
      for (let i = 0; i < values.length; i++) values[i] = xs[i]! * 10;
    });
    expect(y.shape).toEqual([3, 2]);
    const product = tf.tidy(() => [...(tf.matMul(x, y).dataSync() as Float32Array)]);
    expect(product).toEqual([220, 280, 490, 640]);
    // The written tensor is tfjs's own: counted, and freed with the rest.
    expect(tf.memory().numTensors).toBe(before.numTensors + 3);
    tf.dispose([x, sum, y]);
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
    const ids = tf.tensor1d([1], 'int32');
    expect(() => readValues(ids)).toThrow(/float32, not int32/);
    ids.dispose();
  });
});
