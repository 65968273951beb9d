import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import { attention } from '../src/model/layers.ts';
import { KernelWeights } from '../src/model/kernel-weights.ts';
import { Rng } from '../src/model/rng.ts';

// The attention core written for training speed (per-slice products, through the float32
// kernel or tfjs's 2-D matmuls, hand-written backward) must be the same maths as tfjs's
// generic batched matMul/softmax and their gradients, on the backend the trainers use (wasm)
// and on cpu.

function rand(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.normal()),
    shape,
  );
}

function worstDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let worst = 0;
  for (let i = 0; i < x.length; i++)
    worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / (1 + Math.abs(y[i]!)));
  return worst;
}

function causalMask(T: number, past: number): tf.Tensor2D {
  const width = past + T;
  const data = new Float32Array(T * width);
  for (let i = 0; i < T; i++) for (let j = past + i + 1; j < width; j++) data[i * width + j] = -1e9;
  return tf.tensor2d(data, [T, width]);
}

const reference =
  (mask: tf.Tensor2D | null, scale: number, drop: tf.Tensor | null) =>
  (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => {
    let s = tf.mul(tf.matMul(q as tf.Tensor3D, k as tf.Tensor3D, false, true), scale);
    if (mask) s = tf.add(s, mask);
    let p = tf.softmax(s);
    if (drop) p = tf.mul(p, drop);
    return tf.matMul(p as tf.Tensor3D, v as tf.Tensor3D);
  };

describe.each([
  { backend: 'wasm', kernel: true },
  { backend: 'wasm', kernel: false },
  { backend: 'cpu', kernel: false },
] as const)('attention on $backend (float32 kernel: $kernel)', ({ backend, kernel }) => {
  it.each([
    { name: 'causal, square', N: 6, T: 5, past: 0, hs: 4, dropout: false },
    { name: 'with cached keys (t > T, odd)', N: 4, T: 3, past: 4, hs: 8, dropout: false },
    { name: 'one query, no mask', N: 3, T: 1, past: 6, hs: 4, dropout: false },
    { name: 'with a dropout multiplier', N: 4, T: 6, past: 0, hs: 4, dropout: true },
    { name: "the reference model's heads", N: 8, T: 64, past: 0, hs: 32, dropout: false },
    { name: 'a head width the kernel does not take', N: 2, T: 5, past: 0, hs: 6, dropout: false },
  ])('$name: values and gradients equal generic autodiff', async ({ N, T, past, hs, dropout }) => {
    await selectBackend({ force: backend });
    const store = kernel ? KernelWeights.create() : null;
    if (kernel) expect(store).not.toBeNull();
    tf.tidy(() => {
      const t = T + past;
      const q = rand([N, T, hs], 1);
      const k = rand([N, t, hs], 2);
      const v = rand([N, t, hs], 3);
      const mask = T === 1 ? null : causalMask(T, past);
      const drop = dropout
        ? (tf.dropout(tf.ones([N, T, t]), 0.3, undefined, 5) as tf.Tensor3D)
        : null;
      const scale = 1 / Math.sqrt(hs);
      const custom = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Tensor =>
        attention(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, mask, scale, drop, store);
      const generic = reference(mask, scale, drop);
      const probe = rand([N, T, hs], 4);
      expect(worstDiff(custom(q, k, v), generic(q, k, v))).toBeLessThan(1e-5);
      const loss = (f: typeof custom) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.mul(f(a, b, c), probe));
      const gc = tf.grads(loss(custom))([q, k, v]);
      const gr = tf.grads(loss(generic))([q, k, v]);
      gc.forEach((g, i) => expect(worstDiff(g, gr[i]!)).toBeLessThan(1e-5));
    });
    store?.dispose();
  });
});
