import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
// The kernels under test, by their module name: layers.linear is the one in model/layers.ts.
import * as layers from '../src/model/layers.ts';
import { Rng } from '../src/model/rng.ts';
import { KernelWeights } from '../src/model/kernel-weights.ts';

// The hand-written gradients must be the same maths as tfjs's generic ones. Compared on the
// cpu backend, where every generic gradient (including gather's) is registered.
beforeAll(async () => {
  await tf.setBackend('cpu');
});

function rand(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.normal()),
    shape,
  );
}

function expectClose(a: tf.Tensor, b: tf.Tensor, tol = 1e-4): void {
  expect(a.shape).toEqual(b.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let worst = 0;
  for (let i = 0; i < x.length; i++)
    worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / (1 + Math.abs(y[i]!)));
  expect(worst).toBeLessThan(tol);
}

// Rotary tables for 5 positions of an 8-wide head (any values: the maths is the same).
let cos: tf.Tensor2D;
let sin: tf.Tensor2D;
beforeAll(() => {
  const table = (f: (a: number) => number) =>
    tf.keep(
      tf.tensor2d(
        Float32Array.from({ length: 40 }, (_, i) => f(i / 7)),
        [5, 8],
      ),
    );
  cos = table(Math.cos);
  sin = table(Math.sin);
});

/** x·cos + rotate_half(x)·sin through tfjs's generic ops and autodiff. */
function genericRotary(x: tf.Tensor3D): tf.Tensor3D {
  const [x1, x2] = tf.split(x, 2, -1);
  return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2!), x1!], -1), sin));
}

/** Gradients of sum(f(inputs) · probe) for the custom and the reference implementation. */
function compare(
  custom: (...xs: tf.Tensor[]) => tf.Tensor,
  reference: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
): void {
  const out = reference(...inputs);
  const probe = rand(out.shape, 99);
  const loss =
    (f: typeof custom) =>
    (...xs: tf.Tensor[]) =>
      tf.sum(tf.mul(f(...xs), probe));
  expectClose(custom(...inputs), out);
  const gc = tf.grads(loss(custom))(inputs);
  const gr = tf.grads(loss(reference))(inputs);
  gc.forEach((g, i) => expectClose(g, gr[i]!));
}

describe('on wasm, where x·wᵀ runs with a host transpose of x or of w', () => {
  it('linear (trainable and frozen) and matmul keep their values and gradients', async () => {
    await tf.setBackend('wasm');
    try {
      // With w (9, 5): 1 or 3 rows transpose x and the result ((w·xᵀ)ᵀ); 12 rows transpose w.
      for (const rows of [1, 3, 12]) {
        compare(
          (x, w) => layers.linear(x as tf.Tensor2D, w as tf.Tensor2D),
          (x, w) => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D, false, true),
          [rand([rows, 5], 21), rand([9, 5], 22)],
        );
      }
      const x = rand([4, 5], 23);
      const w = rand([9, 5], 24);
      const frozen = tf.variable(w, false) as tf.Variable<tf.Rank.R2>;
      expectClose(
        layers.linear(x as tf.Tensor2D, frozen),
        tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D, false, true),
      );
      frozen.dispose();
      // Rotary positions' host pass: values and gradient of the split-and-concat form.
      compare(
        (x) => layers.rotary(x as tf.Tensor3D, cos, sin),
        (x) => genericRotary(x as tf.Tensor3D),
        [rand([3, 5, 8], 25)],
      );
      // Cross-entropy's host pass: the loss and gradient of tfjs's generic one.
      const targets = Int32Array.from([1, 0, 4, 2]);
      compare(
        (l) => layers.crossEntropy(l as tf.Tensor2D, targets),
        (l) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(targets, 'int32'), 5), l),
        [tf.mul(rand([4, 5], 27), 30)],
      );
      expect(() =>
        layers.crossEntropy(
          rand([4, 5], 28) as tf.Tensor2D,
          targets.map((t) => t + 1),
        ),
      ).toThrow(/target 5 is outside the vocabulary of 5/);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});

describe('linear through the float32 kernel (KernelWeights, wasm)', () => {
  it('gives the value and input gradient tfjs gives, copies again when the weight is assigned, and leaves other backends to tfjs', async () => {
    await tf.setBackend('wasm');
    const store = KernelWeights.create()!;
    try {
      // 37 rows of x: tiles of 4 positions and a tail; 20 inputs: 8-column tiles and a 4.
      const x = rand([37, 20], 31) as tf.Tensor2D;
      const w = rand([12, 20], 32) as tf.Tensor2D;
      const frozen = tf.variable(w, false) as tf.Variable<tf.Rank.R2>;
      expect(store.for(frozen)).not.toBeNull();
      compare(
        (a) => layers.linear(a as tf.Tensor2D, frozen, store),
        (a) => tf.matMul(a as tf.Tensor2D, w, false, true),
        [x],
      );
      // New values in the variable: the kernel's copy follows them.
      const w2 = rand([12, 20], 33) as tf.Tensor2D;
      frozen.assign(w2);
      expectClose(layers.linear(x, frozen, store), tf.matMul(x, w2, false, true));
      // A width the kernel does not take stays with tfjs.
      const odd = tf.variable(rand([3, 6], 34), false) as tf.Variable<tf.Rank.R2>;
      expect(store.for(odd)).toBeNull();
      await tf.setBackend('cpu');
      expect(store.for(frozen)).toBeNull();
      frozen.dispose();
      odd.dispose();
    } finally {
      store.dispose();
      await tf.setBackend('cpu');
    }
  });
});

describe('a trained linear through the float32 kernel (KernelWeights, wasm)', () => {
  it('gives the value and both gradients tfjs gives, and follows the optimiser writing new values', async () => {
    await tf.setBackend('wasm');
    const store = KernelWeights.create()!;
    try {
      // 37 positions (tiles of 4 and a tail) through widening (20 → 44) and narrowing
      // (44 → 12) weights: the weight gradient's column tiles of 8 and 4.
      for (const [out, inputs] of [
        [44, 20],
        [12, 44],
      ] as const) {
        const x = rand([37, inputs], out);
        const values = rand([out, inputs], out + 1) as tf.Tensor2D;
        const w = tf.variable(values) as tf.Variable<tf.Rank.R2>;
        expect(store.for(w)).not.toBeNull();
        compare(
          (a, b) => layers.linear(a as tf.Tensor2D, b as tf.Tensor2D, store),
          (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, false, true),
          [x, w],
        );
        const next = rand([out, inputs], out + 2) as tf.Tensor2D;
        w.assign(next);
        expectClose(
          layers.linear(x as tf.Tensor2D, w, store),
          tf.matMul(x as tf.Tensor2D, next, false, true),
        );
        w.dispose();
      }
    } finally {
      store.dispose();
      await tf.setBackend('cpu');
    }
  });
});

describe('custom gradients equal generic autodiff', () => {
  it('rotary positions (the host pass on cpu)', () => {
    compare(
      (x) => layers.rotary(x as tf.Tensor3D, cos, sin),
      (x) => genericRotary(x as tf.Tensor3D),
      [rand([4, 5, 8], 1)],
    );
  });

  it('addBias', () => {
    compare(
      (x, b) => layers.addBias(x as tf.Tensor2D, b as tf.Tensor1D),
      (x, b) => tf.add(x, b),
      [rand([6, 5], 3), rand([5], 4)],
    );
  });

  it('linear, in the (out, in) layout of PyTorch', () => {
    compare(
      (x, w) => layers.linear(x as tf.Tensor2D, w as tf.Tensor2D),
      (x, w) => tf.matMul(x as tf.Tensor2D, tf.transpose(w as tf.Tensor2D)),
      [rand([6, 5], 12), rand([7, 5], 13)],
    );
  });

  it('linear on a frozen weight (an adapter training on a fixed base): same value, same dx', () => {
    const x = rand([6, 5], 15);
    const w = rand([7, 5], 16);
    const frozen = tf.variable(w, false) as tf.Variable<tf.Rank.R2>;
    const probe = rand([6, 7], 17);
    const dx = (weight: tf.Tensor) =>
      tf.grad((input: tf.Tensor) =>
        tf.sum(tf.mul(layers.linear(input as tf.Tensor2D, weight as tf.Tensor2D), probe)),
      )(x);
    expectClose(
      layers.linear(x as tf.Tensor2D, frozen),
      layers.linear(x as tf.Tensor2D, w as tf.Tensor2D),
    );
    expectClose(dx(frozen), dx(w));
    // An embedding table that is frozen is a plain lookup.
    const table = tf.variable(rand([5, 4], 18), false) as tf.Variable<tf.Rank.R2>;
    const ids = Int32Array.from([3, 0, 3]);
    expectClose(layers.embed(table, ids), tf.gather(table, tf.tensor1d(ids, 'int32')));
    frozen.dispose();
    table.dispose();
  });

  it('rmsNorm as Llama computes it', () => {
    compare(
      (x, g) => layers.rmsNorm(x as tf.Tensor2D, g as tf.Tensor1D, 1e-5),
      (x, g) => tf.mul(tf.div(x, tf.sqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5))), g),
      [rand([5, 8], 5), rand([8], 6)],
    );
  });

  it('swiglu: silu(gate) · up', () => {
    compare(
      (g, u) => layers.swiglu(g!, u!),
      (g, u) => tf.mul(tf.mul(g!, tf.sigmoid(g!)), u!),
      [tf.mul(rand([4, 9], 10), 3), rand([4, 9], 14)],
    );
  });

  it('embedding lookup', () => {
    const ids = Int32Array.from([3, 0, 3, 1, 4]);
    compare(
      (t) => layers.embed(t as tf.Tensor2D, ids),
      (t) => tf.gather(t, tf.tensor1d(ids, 'int32')),
      [rand([5, 4], 11)],
    );
  });

  it('cross-entropy', () => {
    const targets = Int32Array.from([1, 0, 4, 2]);
    compare(
      (l) => layers.crossEntropy(l as tf.Tensor2D, targets),
      (l) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(targets, 'int32'), 5), l),
      [rand([4, 5], 12)],
    );
  });
});
