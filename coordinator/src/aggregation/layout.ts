import {
  CheckpointError,
  elementCount,
  formatShape,
  sameShape,
  type NamedTensors,
} from '@commons/shared/engine';

/**
 * Aggregation works on one flat vector per model: every tensor laid end to end in checkpoint
 * order. The layout says where each tensor lives in it, so a frame, a model and an aggregate
 * can be turned into one another without asking the model engine.
 */
export interface LayoutEntry {
  name: string;
  shape: number[];
  /** First element of this tensor in the flat vector. */
  offset: number;
  /** Elements it holds (product of the shape). */
  size: number;
}

/** Where each tensor of the model lives in one flat Float32Array (checkpoint order). */
export interface ParameterLayout {
  entries: LayoutEntry[];
  /** Elements in the whole flat vector. */
  size: number;
}

export function layoutOf(
  tensors: NamedTensors | readonly { name: string; shape: readonly number[] }[],
): ParameterLayout {
  const named =
    tensors instanceof Map
      ? [...tensors].map(([name, { shape }]) => ({ name, shape }))
      : tensors.map(({ name, shape }) => ({ name, shape }));
  const entries: LayoutEntry[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const { name, shape } of named) {
    if (seen.has(name)) {
      throw new CheckpointError('BAD_LAYOUT', `tensor "${name}" appears twice in the layout`);
    }
    if (!shape.every((dim) => Number.isInteger(dim) && dim >= 0)) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${name}" has shape ${formatShape(shape)}`,
      );
    }
    seen.add(name);
    const size = elementCount(shape);
    entries.push({ name, shape: [...shape], offset, size });
    offset += size;
  }
  return { entries, size: offset };
}

/** The tensors laid end to end in layout order, in a fresh array. */
export function flatten(tensors: NamedTensors, layout: ParameterLayout): Float32Array {
  if (tensors.size !== layout.entries.length) {
    throw new CheckpointError(
      'NAME_MISMATCH',
      `${tensors.size} tensors given for a layout of ${layout.entries.length}`,
    );
  }
  const flat = new Float32Array(layout.size);
  for (const { name, shape, offset } of layout.entries) {
    const tensor = tensors.get(name);
    if (tensor === undefined) {
      throw new CheckpointError('NAME_MISMATCH', `tensor "${name}" is missing`);
    }
    if (!sameShape(tensor.shape, shape) || tensor.data.length !== elementCount(shape)) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${name}" is ${formatShape(tensor.shape)}, the layout says ${formatShape(shape)}`,
      );
    }
    flat.set(tensor.data, offset);
  }
  return flat;
}

/** Named tensors cut from a flat vector; each is a copy, so nothing aliases `flat`. */
export function unflatten(flat: Float32Array, layout: ParameterLayout): NamedTensors {
  if (flat.length !== layout.size) {
    throw new CheckpointError(
      'SIZE_MISMATCH',
      `flat vector holds ${flat.length} values, the layout ${layout.size}`,
    );
  }
  const tensors: NamedTensors = new Map();
  for (const { name, shape, offset, size } of layout.entries) {
    tensors.set(name, { shape: [...shape], data: flat.slice(offset, offset + size) });
  }
  return tensors;
}
