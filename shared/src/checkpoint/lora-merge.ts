import { CheckpointError } from './errors.ts';
import { formatShape, type NamedTensors } from './tensors.ts';

/**
 * Folding a LoRA adapter into the weights it adapts: W ← W + (α/r)·B·A for every adapted
 * projection. A community model version that came from an adapter round is its parent's
 * weights with the round's adapter folded in, and its content hash is the hash of that result.
 * The coordinator folds it to publish; a member folds it again to activate the version from
 * the small adapter file alone, and must arrive at the same bytes for the hash to match. So
 * this is plain typed-array arithmetic in a fixed order (float64 accumulation, one rounding to
 * float32 per weight), not a backend matmul whose summation order varies by backend and
 * thread count: every JavaScript engine gives bit-identical results.
 *
 * Names and layouts are PEFT's: `<projection>.lora_A.weight` (r, in) and `.lora_B.weight`
 * (out, r), adapting `<projection>.weight` (out, in).
 */

export const LORA_A_SUFFIX = '.lora_A.weight';
export const LORA_B_SUFFIX = '.lora_B.weight';

/**
 * Whether the adapter factor `name` trains: every factor does, except the A factors when A is
 * frozen (FFA-LoRA, Sun et al. 2024: A stays as drawn from the round's seed, only B trains).
 * The one rule for a member's trainer, a federated client and the coordinator's round adapter.
 */
export function factorTrains(name: string, freezeA: boolean): boolean {
  return !(freezeA && name.endsWith(LORA_A_SUFFIX));
}

/** The projection an adapter tensor adapts (`model.layers.0.self_attn.q_proj`), or null. */
export function loraProjection(name: string): { projection: string; factor: 'A' | 'B' } | null {
  if (name.endsWith(LORA_A_SUFFIX)) {
    return { projection: name.slice(0, -LORA_A_SUFFIX.length), factor: 'A' };
  }
  if (name.endsWith(LORA_B_SUFFIX)) {
    return { projection: name.slice(0, -LORA_B_SUFFIX.length), factor: 'B' };
  }
  return null;
}

/**
 * Checks that an adapter fits a model: every tensor is an A or B factor of rank `rank`, each
 * comes with its pair, and each pair adapts a projection the model has with matching
 * dimensions. Throws ADAPTER_MISMATCH naming the first tensor that does not fit.
 */
export function checkAdapterFits(base: NamedTensors, adapter: NamedTensors, rank: number): void {
  if (adapter.size === 0) throw new CheckpointError('ADAPTER_MISMATCH', 'the adapter is empty');
  for (const [name, tensor] of adapter) {
    const part = loraProjection(name);
    if (part === null) {
      throw new CheckpointError(
        'ADAPTER_MISMATCH',
        `adapter tensor "${name}" is neither a lora_A nor a lora_B factor`,
      );
    }
    const pairName = part.projection + (part.factor === 'A' ? LORA_B_SUFFIX : LORA_A_SUFFIX);
    if (!adapter.has(pairName)) {
      throw new CheckpointError(
        'ADAPTER_MISMATCH',
        `adapter tensor "${name}" has no "${pairName}" to pair with`,
      );
    }
    const weight = base.get(`${part.projection}.weight`);
    if (weight === undefined || weight.shape.length !== 2) {
      throw new CheckpointError(
        'ADAPTER_MISMATCH',
        `adapter tensor "${name}" adapts "${part.projection}.weight", which the model does not have`,
      );
    }
    const [out, fanIn] = weight.shape as [number, number];
    const expected = part.factor === 'A' ? [rank, fanIn] : [out, rank];
    if (
      tensor.shape.length !== 2 ||
      tensor.shape[0] !== expected[0] ||
      tensor.shape[1] !== expected[1] ||
      tensor.data.length !== expected[0]! * expected[1]!
    ) {
      throw new CheckpointError(
        'ADAPTER_MISMATCH',
        `adapter tensor "${name}" is ${formatShape(tensor.shape)}; for the model's ${formatShape(weight.shape)} "${part.projection}.weight" at rank ${rank} it must be ${formatShape(expected)}`,
      );
    }
  }
}

/**
 * The base weights with the adapter folded in, W + (α/r)·B·A, as a new map. Tensors the
 * adapter does not touch are the base's own objects (not copies); adapted ones are fresh.
 * Throws ADAPTER_MISMATCH when the adapter does not fit (checkAdapterFits).
 */
export function mergeLora(
  base: NamedTensors,
  adapter: NamedTensors,
  lora: { rank: number; alpha: number },
): NamedTensors {
  checkAdapterFits(base, adapter, lora.rank);
  const scale = lora.alpha / lora.rank;
  const merged: NamedTensors = new Map(base);
  for (const [name, a] of adapter) {
    const part = loraProjection(name)!;
    if (part.factor !== 'A') continue;
    const b = adapter.get(part.projection + LORA_B_SUFFIX)!;
    const weightName = `${part.projection}.weight`;
    const weight = base.get(weightName)!;
    const [out, fanIn] = weight.shape as [number, number];
    const result = new Float32Array(out * fanIn);
    const row = new Float64Array(fanIn);
    for (let o = 0; o < out; o++) {
      row.fill(0);
      for (let r = 0; r < lora.rank; r++) {
        const coefficient = b.data[o * lora.rank + r]!;
        if (coefficient === 0) continue;
        const aRow = r * fanIn;
        for (let i = 0; i < fanIn; i++) row[i] = row[i]! + coefficient * a.data[aRow + i]!;
      }
      const offset = o * fanIn;
      for (let i = 0; i < fanIn; i++) {
        result[offset + i] = weight.data[offset + i]! + scale * row[i]!;
      }
    }
    merged.set(weightName, { shape: [out, fanIn], data: result });
  }
  return merged;
}
