// Fixed-point encoding of a weighted update into the ring, as Flower's SecAgg+ does it:
// clip to [−c, c], shift by c, scale to [0, Q − 1] and round stochastically (so the rounding
// is unbiased), with the client's weight travelling as an extra coordinate (Flower's
// [w, w·x] trick) so the server learns Σw and Σw·x but never a single w.
//
// Layout of an encoded vector (length L + 1):
//   [0]      wq = round(w / maxWeight · (Q − 1))          the weight coordinate
//   [1 + k]  ≈ r · (clip(x_k) + c) · s,  r = wq / (Q − 1), s = (Q − 1) / (2c)
// Decoding a sum of n such vectors: R = Σr = sum[0] / (Q − 1), and
//   Σ r·x_k = sum[1 + k] / s − c · R       (the n offsets removed as c·Σr)
// then scaled by maxWeight back to Σ w·x and Σ w.
import type { SecAggConfig } from './config.ts';
import { SecAggError } from './errors.ts';
import { QUANTIZE_BATCH, QuantizeKernel } from './quantize-kernel.ts';

type QuantizationParams = Pick<SecAggConfig, 'clippingRange' | 'quantizationRange' | 'maxWeight'>;

/** Coordinates per batch of rounding randomness (crypto.getRandomValues takes ≤ 64 KiB). */
const RANDOM_WORDS = QUANTIZE_BATCH;

const kernel = QuantizeKernel.create();

/** The WebAssembly SIMD loop (quantize-kernel.ts, bit-identical) or the JavaScript one. */
export type QuantizeImplementation = 'wasm' | 'js';
export const defaultQuantize: QuantizeImplementation = kernel ? 'wasm' : 'js';

/**
 * Encodes one client's update and weight as L + 1 ring elements (before masking). The
 * stochastic rounding draws 32 random bits per coordinate from the platform's CSPRNG in
 * batches, unless a test hands in its own uniform [0, 1) source.
 */
export function quantizeWeighted(
  update: Float32Array,
  weight: number,
  config: QuantizationParams,
  random?: () => number,
  /** Where to write the L + 1 words (every one is overwritten); a fresh array by default. */
  out: Uint32Array = new Uint32Array(update.length + 1),
  impl: QuantizeImplementation = defaultQuantize,
): Uint32Array {
  if (out.length !== update.length + 1) {
    throw new RangeError(`${update.length + 1} ring words do not fit a vector of ${out.length}`);
  }
  const { clippingRange: c, quantizationRange: Q, maxWeight } = config;
  if (!(Number.isFinite(weight) && weight > 0 && weight <= maxWeight)) {
    throw new SecAggError(
      'BAD_INPUT',
      `the weight must be in (0, maxWeight = ${maxWeight}], got ${weight}`,
    );
  }
  const wq = Math.round((weight / maxWeight) * (Q - 1));
  if (wq === 0) {
    throw new SecAggError(
      'BAD_INPUT',
      `the weight ${weight} rounds to 0 at quantizationRange ${Q} with maxWeight ${maxWeight}`,
    );
  }
  const r = wq / (Q - 1);
  const scale = (r * (Q - 1)) / (2 * c);
  const top = Q - 1;
  out[0] = wq;
  const notFinite = (k: number) =>
    new SecAggError('BAD_INPUT', `update coordinate ${k} is ${update[k]}, not a finite number`);
  if (impl === 'wasm') {
    if (!kernel) throw new Error('the WebAssembly quantiser needs WebAssembly SIMD');
    for (let start = 0; start < update.length; start += QUANTIZE_BATCH) {
      const n = Math.min(QUANTIZE_BATCH, update.length - start);
      kernel.src.set(update.subarray(start, start + n));
      const bits = kernel.bits.subarray(0, n);
      if (random) for (let k = 0; k < n; k++) bits[k] = random() * 2 ** 32;
      else crypto.getRandomValues(bits);
      if (!kernel.run(n, c, scale, top, out, start + 1)) {
        for (let k = start; k < start + n; k++) {
          const x = update[k] as number;
          if (x - x !== 0) throw notFinite(k);
        }
      }
    }
    return out;
  }
  const bits = new Uint32Array(Math.min(RANDOM_WORDS, update.length));
  for (let start = 0; start < update.length; start += RANDOM_WORDS) {
    const end = Math.min(start + RANDOM_WORDS, update.length);
    if (random) for (let k = start; k < end; k++) bits[k - start] = random() * 2 ** 32;
    else crypto.getRandomValues(bits.subarray(0, end - start));
    for (let k = start; k < end; k++) {
      const x = update[k] as number;
      if (x - x !== 0) throw notFinite(k);
      const v = ((x < -c ? -c : x > c ? c : x) + c) * scale;
      const low = Math.floor(v);
      // Round up with probability v − low: compare 32 uniform bits against it.
      const q = (bits[k - start] as number) < (v - low) * 2 ** 32 ? low + 1 : low;
      out[k + 1] = q > top ? top : q; // v ≤ Q − 1 up to float rounding
    }
  }
  return out;
}

export interface DequantizedSum {
  /** Σ w_i · x_i over the clients in the sum (x clipped to the clipping range). */
  weightedSum: Float32Array;
  /** Σ w_i, as quantised (within maxWeight / (2(Q − 1)) per client of the true weights). */
  totalWeight: number;
}

/** Decodes the unmasked sum of encoded vectors (see the layout above). */
export function dequantizeSum(sum: Uint32Array, config: QuantizationParams): DequantizedSum {
  const { clippingRange: c, quantizationRange: Q, maxWeight } = config;
  const ratioSum = (sum[0] as number) / (Q - 1);
  const s = (Q - 1) / (2 * c);
  const offset = c * ratioSum;
  const weightedSum = new Float32Array(sum.length - 1);
  for (let k = 0; k < weightedSum.length; k++) {
    weightedSum[k] = ((sum[k + 1] as number) / s - offset) * maxWeight;
  }
  return { weightedSum, totalWeight: ratioSum * maxWeight };
}

/**
 * The largest |error| of one coordinate of Σ w·x from stochastic rounding: each client's
 * coordinate is off by less than one quantum 1/s in r-units, so n clients by < n · maxWeight · 2c / (Q − 1).
 */
export function quantizationErrorBound(config: QuantizationParams, numClients: number): number {
  return (
    (numClients * config.maxWeight * 2 * config.clippingRange) / (config.quantizationRange - 1)
  );
}
