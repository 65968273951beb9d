// The checks an update frame passes before it may touch an aggregate: it decodes, holds exactly
// the base model's tensors with their shapes, in the model's order, every value is finite, and its L2 norm is within
// the policy's clip bound. Each failure is a ProtocolError with the code the client receives.
import {
  CheckpointError,
  l2Norm,
  formatShape,
  sameShape,
  decodeTensors,
} from '@commons/shared/engine';
import { ProtocolError, type LayoutEntry } from '@commons/shared/protocol';

/**
 * Clients clip before encoding and check the decoded norm, so an honest update is at most C up
 * to float rounding in the norm itself; this slack absorbs that and nothing more.
 */
export const NORM_TOLERANCE = 1e-5;

/** Decodes and checks a frame; returns its L2 norm. */
export function validateUpdate(
  frame: Uint8Array,
  layout: readonly LayoutEntry[],
  clipNorm: number,
): number {
  let tensors;
  try {
    tensors = decodeTensors(frame);
  } catch (error) {
    if (error instanceof CheckpointError) {
      if (error.code === 'NON_FINITE') throw new ProtocolError('NON_FINITE', error.message);
      throw new ProtocolError('BAD_FRAME', error.message);
    }
    throw error;
  }
  for (const { name, shape } of layout) {
    const tensor = tensors.get(name);
    if (tensor === undefined) {
      throw new ProtocolError('WRONG_SHAPE', `the update has no tensor "${name}"`);
    }
    if (!sameShape(tensor.shape, shape as number[])) {
      throw new ProtocolError(
        'WRONG_SHAPE',
        `tensor "${name}" is ${formatShape(tensor.shape)}, the base model's is ${formatShape(shape as number[])}`,
      );
    }
  }
  if (tensors.size !== layout.length) {
    const known = new Set(layout.map((entry) => entry.name));
    const extra = [...tensors.keys()].find((name) => !known.has(name));
    throw new ProtocolError('WRONG_SHAPE', `the update has a tensor "${extra}" the model lacks`);
  }
  // The aggregator reads values by position (aggregation/frame-view.ts): a frame holding the
  // right tensors in another order would pass every check above and fail only when folded.
  const names = [...tensors.keys()];
  layout.forEach(({ name }, i) => {
    if (names[i] !== name) {
      throw new ProtocolError(
        'WRONG_SHAPE',
        `the update's tensor ${i} is "${names[i]}" where the model's is "${name}": tensors must come in the model's order`,
      );
    }
  });
  // decodeTensors already refuses NaN and ±Inf, but a sum of squares can still overflow.
  const norm = l2Norm(tensors);
  if (!Number.isFinite(norm))
    throw new ProtocolError('NON_FINITE', 'the update norm is not finite');
  if (norm > clipNorm * (1 + NORM_TOLERANCE)) {
    throw new ProtocolError(
      'NORM_EXCEEDED',
      `the update's L2 norm ${norm.toPrecision(6)} is above the clip bound ${clipNorm}`,
    );
  }
  return norm;
}
