/**
 * The fixed order in which every parameter sits in one flat Float32 buffer: gradients in
 * shared memory, the weights and Adam moments of the optimiser. The order is the model's
 * checkpoint order, so the main thread and every worker agree without negotiating.
 */
export interface ParamSlot {
  name: string;
  shape: number[];
  /** First element of this parameter in the flat buffer. */
  offset: number;
  size: number;
  /** Weight decay applies (matrices and embeddings; not biases or LayerNorm gains). */
  decayed: boolean;
}

export interface FlatLayout {
  slots: ParamSlot[];
  /** Elements in the whole flat buffer. */
  total: number;
}

export function flatLayout(shapes: ReadonlyMap<string, readonly number[]>): FlatLayout {
  const slots: ParamSlot[] = [];
  let offset = 0;
  for (const [name, shape] of shapes) {
    const size = shape.reduce((a, b) => a * b, 1);
    slots.push({ name, shape: [...shape], offset, size, decayed: shape.length === 2 });
    offset += size;
  }
  return { slots, total: offset };
}

/** Copy named host tensors into `out` (or a new buffer) in layout order. */
export function packTensors(
  layout: FlatLayout,
  tensors: ReadonlyMap<string, { data: Float32Array }>,
  out = new Float32Array(layout.total),
): Float32Array {
  for (const s of layout.slots) {
    const t = tensors.get(s.name);
    if (!t || t.data.length !== s.size) {
      throw new Error(
        `tensor "${s.name}" is missing or has ${t?.data.length} values, expected ${s.size}`,
      );
    }
    out.set(t.data, s.offset);
  }
  return out;
}

/** Named host tensors (copies) from a flat buffer in layout order; names may get a prefix. */
export function unpackTensors(
  layout: FlatLayout,
  flat: Float32Array,
  prefix = '',
): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const s of layout.slots) {
    out.set(prefix + s.name, {
      shape: [...s.shape],
      data: flat.slice(s.offset, s.offset + s.size),
    });
  }
  return out;
}
