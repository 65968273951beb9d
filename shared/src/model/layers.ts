import * as tf from '@tensorflow/tfjs';
import { filledTensor, readValues } from '../backend/host-values.ts';
import { transposeMatrix } from '../checkpoint/tensors.ts';

/**
 * The differentiable building blocks of the transformer, each with a hand-written
 * gradient chosen for the wasm backend: there only 2-D, untransposed `matMul` is fast
 * (XNNPACK), reductions over the first axis are slow and the gradient of `gather` is not
 * registered at all. So gradients transpose explicitly, reduce over rows with a
 * ones-vector matmul, and embeddings scatter their gradient with a one-hot matmul.
 * Every function here is exact maths; only the way it is computed differs from tfjs's
 * generic gradients (the tests compare both).
 */

type Saved = tf.Tensor[];
type Forward = (...args: never[]) => {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor, saved: Saved) => tf.Tensor | tf.Tensor[];
};

/**
 * tf.customGrad with the argument types of the forward function kept, and the gradient run
 * in a tidy scope. tfjs tidies a custom forward but calls a custom gradient in the scope of
 * the whole backward pass, so without this every intermediate of every layer's gradient
 * lived until the backward ended: LoRA at SmolLM2-135M's shape over 256 positions filled
 * wasm's 4 GB heap.
 */
function withGradient<Args extends tf.Tensor[], R extends tf.Tensor>(
  forward: (...args: [...Args, tf.GradSaveFunc]) => ReturnType<Forward>,
): (...args: Args) => R {
  const tidied = (...args: [...Args, tf.GradSaveFunc]) => {
    const { value, gradFunc } = forward(...args);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: Saved) => tf.tidy(() => gradFunc(dy, saved)),
    };
  };
  return tf.customGrad(tidied as never) as unknown as (...args: Args) => R;
}

/** y = x + b for x (N, out), b (out); db = 1ᵀ · dy (a matmul, not a slow axis-0 sum). */
export const addBias = withGradient<[tf.Tensor2D, tf.Tensor1D], tf.Tensor2D>((x, b) => ({
  value: tf.add(x, b),
  gradFunc: (dy: tf.Tensor) => [dy, columnSums(dy as tf.Tensor2D)],
}));

/** Whether the backend keeps tensors in host memory (wasm, cpu): reading one costs a copy. */
function tensorsOnHost(): boolean {
  const backend = tf.getBackend();
  return backend === 'wasm' || backend === 'cpu';
}

/**
 * Column sums of a (N, M) matrix as (M). On the host where tensors live in host memory: a
 * (1, N)·(N, M) matMul, the shape of a matrix–vector product, ran at ~0.2 GFLOP/s on wasm
 * (1.4 ms for the reference model's 1,024 × 128, against ~0.2 ms to read and add on the
 * host); elsewhere as that matMul (tfjs's axis-0 reductions are slower still).
 */
export function columnSums(m: tf.Tensor2D): tf.Tensor1D {
  const [n, cols] = m.shape;
  if (!tensorsOnHost()) return tf.reshape(tf.matMul(tf.ones([1, n]), m), [cols]);
  const data = readValues(m);
  const sums = new Float64Array(cols);
  for (let r = 0, at = 0; r < n; r++) for (let c = 0; c < cols; c++, at++) sums[c]! += data[at]!;
  return tf.tensor1d(Float32Array.from(sums));
}

/**
 * y = x · wᵀ for x (N, in) and w (out, in), PyTorch's nn.Linear layout (the layout of every
 * Hugging Face checkpoint, so weights load without a transpose). Gradients: dx = dy · w (an
 * untransposed product, the fast one on wasm) and dw = dyᵀ · x. A frozen weight (a variable
 * made untrainable, as the base is while an adapter trains) gets no dw at all: tfjs would
 * compute and then drop it, a third of the backward's work and a weight-sized tensor per layer.
 * Where `kernel` takes w (wasm: kernel-weights.ts), every product runs there instead of tfjs.
 */
export function linear(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  kernel: KernelProducts | null = null,
): tf.Tensor2D {
  const products = w instanceof tf.Variable ? (kernel?.for(w) ?? null) : null;
  if (isFrozen(w))
    return products ? frozenKernelLinear(products, w.shape[0])(x) : frozenLinear(w)(x);
  return products ? kernelLinear(products)(x, w) : trainableLinear(x, w);
}

/** A linear layer's products through a faster kernel than tfjs's (kernel-weights.ts). */
export interface KernelProducts {
  /** The kernel's products for w, or null where it does not take w (then tfjs runs them). */
  for(w: tf.Variable): LinearKernel | null;
}

/** Products with one weight w (out, in), operands and results row-major on the host. */
export interface LinearKernel {
  /** x (n, in) · wᵀ → (n, out), into `out`. */
  forward(x: Float32Array, n: number, out: Float32Array): void;
  /** dy (n, out) · w → (n, in), into `out`. */
  backward(dy: Float32Array, n: number, out: Float32Array): void;
  /** dyᵀ · x → (out, in), the weight's gradient, into `out`. */
  weightGradient(dy: Float32Array, x: Float32Array, n: number, out: Float32Array): void;
}

/** frozenLinear through a kernel on the host: the gradient flows to x only. */
function frozenKernelLinear(kernel: LinearKernel, out: number): (x: tf.Tensor2D) => tf.Tensor2D {
  return withGradient<[tf.Tensor2D], tf.Tensor2D>((x) => {
    const [n, inputs] = x.shape;
    return {
      value: filledTensor([n, out], (y) => kernel.forward(readValues(x), n, y)),
      gradFunc: (dy: tf.Tensor) =>
        filledTensor([n, inputs], (dx) => kernel.backward(readValues(dy), n, dx)),
    };
  });
}

/** A trained weight's linear through a kernel on the host. w arrives as an input only so
 * that tfjs routes its gradient: the kernel holds its values. */
function kernelLinear(kernel: LinearKernel): (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D {
  return withGradient<[tf.Tensor2D, tf.Tensor2D], tf.Tensor2D>((x, w, save) => {
    const [n, inputs] = x.shape;
    const [out] = w.shape;
    save([x]);
    return {
      value: filledTensor([n, out], (y) => kernel.forward(readValues(x), n, y)),
      gradFunc: (dy: tf.Tensor, saved: Saved) => [
        filledTensor([n, inputs], (dx) => kernel.backward(readValues(dy), n, dx)),
        filledTensor([out, inputs], (dw) =>
          kernel.weightGradient(readValues(dy), readValues(saved[0]!), n, dw),
        ),
      ],
    };
  });
}

const trainableLinear = withGradient<[tf.Tensor2D, tf.Tensor2D], tf.Tensor2D>((x, w, save) => {
  save([x, w]);
  return {
    value: timesTransposed(x, w),
    gradFunc: (dy: tf.Tensor, saved: Saved) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const dy2 = dy as tf.Tensor2D;
      return [tf.matMul(dy2, ws), tf.matMul(transposed(dy2), xs)];
    },
  };
});

/** x · wᵀ with w a constant: the gradient flows to x only. */
function frozenLinear(w: tf.Tensor2D): (x: tf.Tensor2D) => tf.Tensor2D {
  return withGradient<[tf.Tensor2D], tf.Tensor2D>((x) => ({
    value: timesTransposed(x, w),
    gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, w),
  }));
}

/**
 * x (N, in) · wᵀ for w (out, in). On wasm, whose matMul with transposeB runs ~10× slower
 * than a plain one (2 against 24 GFLOP/s at the reference model's shapes), the transpose
 * is done on the host, to whichever side is smaller:
 * - x has fewer rows than w (fine-tuning a real model: 128 positions against 576–8,960
 *   outputs, or decoding one token): as (w · xᵀ)ᵀ, x and the result transposed (LoRA
 *   training at SmolLM2-135M's shape went from 12.8 to 35.6 tokens/s);
 * - w is the smaller (the reference model's batches of 1,024+ positions against 128–344
 *   outputs): x · (wᵀ), w transposed (training went from ~1.1 s to ~0.4 s a step).
 * Elsewhere (GPU, tfjs-node) tfjs's transposed product is fine.
 */
function timesTransposed(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  if (tf.getBackend() !== 'wasm') return tf.matMul(x, w, false, true);
  const [n, inputs] = x.shape;
  const [outputs] = w.shape;
  if (outputs * inputs <= n * (inputs + outputs)) {
    const wT = transposed(w);
    const y = tf.matMul(x, wT) as tf.Tensor2D;
    wT.dispose();
    return y;
  }
  const yT = tf.matMul(w, transposed(x)) as tf.Tensor2D;
  const y = transposed(yT);
  yT.dispose();
  return y;
}

/** (a, b) → (b, a): on wasm through the host (tfjs's wasm transpose is ~25 ns an element). */
function transposed(m: tf.Tensor2D): tf.Tensor2D {
  if (tf.getBackend() !== 'wasm') return tf.transpose(m);
  const [rows, cols] = m.shape;
  return tf.tensor2d(transposeMatrix(readValues(m), rows, cols), [cols, rows]);
}

/** A variable that is not being trained (tf.Variable.trainable false). */
function isFrozen(t: tf.Tensor): boolean {
  return t instanceof tf.Variable && !t.trainable;
}

/**
 * RMSNorm over the last axis of x (N, C) with gain g, as Llama computes it in float32:
 * y = g · x / √(mean(x²) + eps). Backward, with r = 1/√(mean(x²) + eps) and x̂ = x·r:
 * dx = r · (dx̂ − x̂ · mean(dx̂ · x̂)) where dx̂ = dy · g; dg = Σ_rows dy · x̂.
 */
export function rmsNorm(x: tf.Tensor2D, g: tf.Tensor1D, eps: number): tf.Tensor2D {
  const f = withGradient<[tf.Tensor2D, tf.Tensor1D], tf.Tensor2D>((xIn, gIn, save) => {
    const r = tf.rsqrt(tf.add(tf.mean(tf.mul(xIn, xIn), -1, true), eps));
    const xhat = tf.mul(xIn, r);
    save([xhat, r, gIn]);
    return {
      value: tf.mul(xhat, gIn),
      gradFunc: (dy: tf.Tensor, saved: Saved) => {
        const [xh, rs, gs] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const dxhat = tf.mul(dy, gs);
        const dx = tf.mul(rs, tf.sub(dxhat, tf.mul(xh, tf.mean(tf.mul(dxhat, xh), -1, true))));
        return [dx, columnSums(tf.mul(dy, xh) as tf.Tensor2D)];
      },
    };
  });
  return f(x, g);
}

/**
 * Rotary positions on x (N, T, hd) in transformers' rotate_half layout: x·cos + rh(x)·sin for
 * tables (T, hd), with rh(x) = (−x₂, x₁) over the halves of the last axis. rh's transpose is
 * −rh, so dx = dy·cos − rh(dy·sin). On backends that hold tensors in host memory this is one
 * pass over x on the host: as tfjs ops it was a (N·T, hd)·(hd, hd) matMul against rh's
 * matrix, plus the products and sums (about 30 ms a step of the reference model on wasm).
 */
export function rotary(x: tf.Tensor3D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor3D {
  if (!tensorsOnHost()) {
    const [x1, x2] = tf.split(x, 2, -1);
    return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2!), x1!], -1), sin));
  }
  const [n, T, hd] = x.shape;
  // Copies, not views: the tables (T, hd) are small and the gradient runs later.
  const c = cos.dataSync() as Float32Array;
  const s = sin.dataSync() as Float32Array;
  const pass = (from: tf.Tensor, gradient: boolean) =>
    filledTensor<tf.Rank.R3>([n, T, hd], (out) =>
      rotateRows(readValues(from), out, T, hd, c, s, gradient),
    );
  const f = withGradient<[tf.Tensor3D], tf.Tensor3D>((xIn) => ({
    value: pass(xIn, false),
    gradFunc: (dy: tf.Tensor) => pass(dy, true),
  }));
  return f(x);
}

/**
 * Rows of x (·, hd) into out, row r at position r mod T: x·cos + rh(x)·sin, or for the
 * gradient x·cos − rh(x·sin).
 */
function rotateRows(
  x: Float32Array,
  out: Float32Array,
  T: number,
  hd: number,
  cos: Float32Array,
  sin: Float32Array,
  gradient: boolean,
): void {
  const half = hd / 2;
  for (let at = 0, r = 0; at < x.length; at += hd, r++) {
    const p = (r % T) * hd;
    if (!gradient) {
      for (let j = 0; j < half; j++) {
        const a = x[at + j]!;
        const b = x[at + j + half]!;
        out[at + j] = a * cos[p + j]! - b * sin[p + j]!;
        out[at + j + half] = b * cos[p + j + half]! + a * sin[p + j + half]!;
      }
    } else {
      // −rh(dy·sin): the first half gets +(dy·sin)₂, the second −(dy·sin)₁.
      for (let j = 0; j < half; j++) {
        const a = x[at + j]!;
        const b = x[at + j + half]!;
        out[at + j] = a * cos[p + j]! + b * sin[p + j + half]!;
        out[at + j + half] = b * cos[p + j + half]! - a * sin[p + j]!;
      }
    }
  }
}

/**
 * SwiGLU's gate: silu(gate) · up, with silu(a) = a·σ(a). Backward by hand (one sigmoid kept):
 * d/dgate = dy · up · σ(a)(1 + a(1 − σ(a))), d/dup = dy · silu(a).
 */
export const swiglu = withGradient<[tf.Tensor, tf.Tensor], tf.Tensor>((gate, up, save) => {
  const s = tf.sigmoid(gate);
  const silu = tf.mul(gate, s);
  save([gate, up, s, silu]);
  return {
    value: tf.mul(silu, up),
    gradFunc: (dy: tf.Tensor, saved: Saved) => {
      const [a, u, sg, sl] = saved as tf.Tensor[];
      const dSilu = tf.mul(sg!, tf.add(1, tf.mul(a!, tf.sub(1, sg!))));
      return [tf.mul(tf.mul(dy, u!), dSilu), tf.mul(dy, sl!)];
    },
  };
});

/**
 * Rows of `table` (V, C) picked by host-side ids → (N, C). The gradient scatters dy back
 * into the table with a one-hot matmul built on the host: oneHotᵀ (V, N) · dy (N, C).
 */
export function embed(table: tf.Tensor2D, ids: Int32Array): tf.Tensor2D {
  const [vocab] = table.shape;
  // A frozen table needs no gradient: a plain lookup, nothing kept for a backward pass.
  if (isFrozen(table)) return lookup(table, ids);
  const f = withGradient<[tf.Tensor2D], tf.Tensor2D>((t) => ({
    value: lookup(t, ids),
    gradFunc: (dy: tf.Tensor) => tf.matMul(oneHotTransposed(ids, vocab), dy as tf.Tensor2D),
  }));
  return f(table);
}

/**
 * wasm's Gather is ~5× slower than XNNPACK's one-hot · table (exact: one 1, rest 0s) while the
 * one-hot stays small.
 */
function lookup(table: tf.Tensor2D, ids: Int32Array): tf.Tensor2D {
  const [vocab] = table.shape;
  return ids.length * vocab <= ONE_HOT_MAX
    ? tf.matMul(oneHot(ids, vocab), table)
    : tf.gather(table, tf.tensor1d(ids, 'int32'));
}

/** Largest one-hot (ids × vocabulary) the embedding forward builds: 4 MB. */
const ONE_HOT_MAX = 1 << 20;

function oneHot(ids: Int32Array, depth: number): tf.Tensor2D {
  const m = new Float32Array(ids.length * depth);
  for (let i = 0; i < ids.length; i++) m[i * depth + ids[i]!] = 1;
  return tf.tensor2d(m, [ids.length, depth]);
}

function oneHotTransposed(ids: Int32Array, depth: number): tf.Tensor2D {
  const n = ids.length;
  const m = new Float32Array(depth * n);
  for (let i = 0; i < n; i++) m[ids[i]! * n + i] = 1;
  return tf.tensor2d(m, [depth, n]);
}

/**
 * Mean cross-entropy of logits (N, V) against host-side targets, with the fused gradient
 * (softmax − onehot) / N instead of differentiating through logSoftmax. On backends that
 * hold tensors in host memory (wasm, cpu) it is one pass on the host that keeps only that
 * gradient for the backward: tfjs's ops kept five (N, V) tensors, 0.8 GB for 256 positions
 * of Qwen2.5's 151,936-token vocabulary.
 */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const [n, vocab] = logits.shape;
  if (targets.length !== n) {
    throw new Error(`cross-entropy: ${targets.length} targets for ${n} rows of logits`);
  }
  for (const t of targets) {
    if (!Number.isInteger(t) || t < 0 || t >= vocab)
      throw new Error(`cross-entropy: target ${t} is outside the vocabulary of ${vocab}`);
  }
  const onHost = tensorsOnHost();
  const f = withGradient<[tf.Tensor2D], tf.Scalar>((l, save) => {
    if (onHost) {
      let loss = 0;
      const gradient = filledTensor<tf.Rank.R2>([n, vocab], (g) => {
        loss = hostCrossEntropy(readValues(l), targets, vocab, g);
      });
      save([gradient]);
      return {
        value: tf.scalar(loss),
        gradFunc: (dy: tf.Tensor, saved: Saved) => tf.mul(saved[0]!, dy),
      };
    }
    const logp = tf.logSoftmax(l);
    const onehot = tf.oneHot(tf.tensor1d(targets, 'int32'), vocab);
    save([logp, onehot]);
    return {
      value: tf.div(tf.neg(tf.sum(tf.mul(logp, onehot))), n),
      gradFunc: (dy: tf.Tensor, saved: Saved) => {
        const [lp, oh] = saved as [tf.Tensor2D, tf.Tensor2D];
        return tf.mul(tf.sub(tf.exp(lp), oh), tf.div(dy, n));
      },
    };
  });
  return f(logits);
}

/** Mean −log softmax(row)[target] over rows; its gradient (softmax − onehot) / N into
 * `gradient`. */
function hostCrossEntropy(
  logits: Float32Array,
  targets: Int32Array,
  vocab: number,
  gradient: Float32Array,
): number {
  const n = targets.length;
  let total = 0;
  for (let i = 0, row = 0; i < n; i++, row += vocab) {
    let max = -Infinity;
    for (let j = row; j < row + vocab; j++) if (logits[j]! > max) max = logits[j]!;
    let sum = 0;
    for (let j = row; j < row + vocab; j++) {
      const e = Math.exp(logits[j]! - max);
      gradient[j] = e;
      sum += e;
    }
    const target = row + targets[i]!;
    total += Math.log(sum) - (logits[target]! - max);
    const scale = 1 / (sum * n);
    for (let j = row; j < row + vocab; j++) gradient[j] = gradient[j]! * scale;
    gradient[target] = gradient[target]! - 1 / n;
  }
  return total / n;
}

/**
 * Scaled dot-product attention softmax(q·kᵀ·scale + mask)·v for q (N, T, hs), k and v
 * (N, t, hs), with N = batch · heads, mask (T, t) additive, and an optional dropout
 * multiplier (N, T, t) applied to the attention weights (as `tf.dropout` would).
 *
 * Its products are N small ones, one per head. Given a `kernel` (wasm, hs whole 4-lane
 * vectors) they run there, each operand read as it lies. Else through tfjs, whose wasm
 * backend runs a rank-3 matMul through a naive loop (~1 GFLOP/s) but a 2-D untransposed one
 * through XNNPACK (~20+ GFLOP/s): N separate 2-D matmuls over slices, with transposes done
 * once per rank-3 tensor (k, v, and in the backward the weights and dS), never per slice.
 */
export function attention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  mask: tf.Tensor2D | null,
  scale: number,
  dropMultiplier: tf.Tensor3D | null = null,
  kernel: SliceKernel | null = null,
): tf.Tensor3D {
  const times = kernel && q.shape[2] % 4 === 0 ? kernelSlices(kernel) : tfjsSlices;
  const f = withGradient<[tf.Tensor3D, tf.Tensor3D, tf.Tensor3D], tf.Tensor3D>(
    (qIn, kIn, vIn, save) => {
      let scores = tf.mul(times(qIn, kIn, false, true), scale); // (N, T, t)
      if (mask) scores = tf.add(scores, mask);
      const p = tf.softmax(scores);
      const pDrop = dropMultiplier ? tf.mul(p, dropMultiplier) : p;
      // The dropout multiplier is saved too: it was made in the forward pass's scope, which
      // tfjs ends (disposing it) before the backward runs.
      save(dropMultiplier ? [qIn, kIn, vIn, p, pDrop, dropMultiplier] : [qIn, kIn, vIn, p, pDrop]);
      return {
        value: times(pDrop as tf.Tensor3D, vIn), // (N, T, hs)
        gradFunc: (dy: tf.Tensor, saved: Saved) => {
          const [qs, ks, vs, ps, pd, drop] = saved as tf.Tensor3D[];
          const dy3 = dy as tf.Tensor3D;
          const dv = times(pd!, dy3, true); // pdᵀ · dy: (N, t, hs)
          let dp = times(dy3, vs!, false, true); // dy · vᵀ: (N, T, t)
          if (drop) dp = tf.mul(dp, drop);
          // Softmax backward: dS = P ⊙ (dP − Σⱼ dP ⊙ P), then the scale.
          const ds = tf.mul(
            tf.mul(ps!, tf.sub(dp, tf.sum(tf.mul(dp, ps!), -1, true))),
            scale,
          ) as tf.Tensor3D;
          const dq = times(ds, ks!); // (N, T, hs)
          const dk = times(ds, qs!, true); // dsᵀ · q: (N, t, hs)
          return [dq, dk, dv];
        },
      };
    },
  );
  return f(q, k, v);
}

/** Per-slice products a · b of rank-3 tensors, N slices (f32-kernel.ts's sliceProducts). */
export interface SliceKernel {
  sliceProducts(
    a: Float32Array,
    b: Float32Array,
    shape: { slices: number; m: number; k: number; n: number },
    transposeA?: boolean,
    transposeB?: boolean,
    into?: Float32Array,
  ): Float32Array;
}

/** a · b per slice, where a slice of a lies as (k, m) when transposeA, of b as (n, k) when
 * transposeB. */
type SliceTimes = (
  a: tf.Tensor3D,
  b: tf.Tensor3D,
  transposeA?: boolean,
  transposeB?: boolean,
) => tf.Tensor3D;

function kernelSlices(kernel: SliceKernel): SliceTimes {
  return (a, b, transposeA = false, transposeB = false) => {
    const [slices, a1, a2] = a.shape;
    const [m, k] = transposeA ? [a2, a1] : [a1, a2];
    const n = transposeB ? b.shape[1] : b.shape[2];
    return filledTensor<tf.Rank.R3>([slices, m, n], (out) =>
      kernel.sliceProducts(
        readValues(a),
        readValues(b),
        { slices, m, k, n },
        transposeA,
        transposeB,
        out,
      ),
    );
  };
}

const tfjsSlices: SliceTimes = (a, b, transposeA = false, transposeB = false) =>
  perSlice(transposeA ? transposeInner(a) : a, transposeB ? transposeInner(b) : b);

/** (N, a, b) → (N, b, a). */
function transposeInner(x: tf.Tensor3D): tf.Tensor3D {
  return tf.transpose(x, [0, 2, 1]);
}

const PER_SLICE_MIN_MACS = 16_384;

/**
 * Batched product a (N, m, k) · b (N, k, n) → (N, m, n), as N 2-D matmuls. The slices are
 * cut on the host: one read of each operand and N tensor uploads cost far less than N
 * `tf.slice` kernels (~0.1 ms each on wasm).
 */
function perSlice(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [, m, k] = a.shape;
  // Tiny products (one query while decoding) cost less in one batched kernel than in
  // N uploads and kernel calls.
  if (m * k * b.shape[2] < PER_SLICE_MIN_MACS) return tf.matMul(a, b);
  const as = hostSlices(a);
  const bs = hostSlices(b);
  return tf.stack(as.map((x, i) => tf.matMul(x, bs[i]!))) as tf.Tensor3D;
}

/** (n, r, c) as n (r, c) tensors cut on the host. */
export function hostSlices(x: tf.Tensor3D): tf.Tensor2D[] {
  const [n, rows, cols] = x.shape;
  const data = x.dataSync() as Float32Array;
  const size = rows * cols;
  return Array.from({ length: n }, (_, i) =>
    tf.tensor2d(data.subarray(i * size, (i + 1) * size), [rows, cols]),
  );
}
