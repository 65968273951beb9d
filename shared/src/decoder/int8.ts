/**
 * Weights held on the host as int8 with one float32 scale per output row (symmetric absmax:
 * scale = max|row| / 127, q = round(x / scale)), a quarter of float32's memory. tfjs has no
 * int8 dtype, so the decoder keeps these outside tfjs, in WebAssembly memory where its SIMD
 * kernel multiplies them (int8-kernel.ts), or, without relaxed SIMD, dequantises rows of them
 * for a long prompt.
 */

/** A [rows, cols] matrix, row-major, quantised per row (PyTorch's [out, in]: per output). */
export interface Int8Rows {
  rows: number;
  cols: number;
  values: Int8Array;
  /** One per row; 0 for an all-zero row. */
  scales: Float32Array;
}

export function quantizeRowsInt8(data: Float32Array, rows: number, cols: number): Int8Rows {
  if (data.length !== rows * cols) {
    throw new RangeError(`${data.length} values are not a ${rows}×${cols} matrix`);
  }
  const values = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let max = 0;
    for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(data[base + c]!));
    const scale = max / 127;
    scales[r] = scale;
    if (scale === 0) continue;
    const inverse = 1 / scale;
    for (let c = 0; c < cols; c++) values[base + c] = Math.round(data[base + c]! * inverse);
  }
  return { rows, cols, values, scales };
}

/** Rows `first` … `first + count − 1` as float32, [count, cols], into `out` when given. */
export function dequantizeRowsInt8(
  m: Int8Rows,
  first = 0,
  count = m.rows - first,
  out: Float32Array<ArrayBufferLike> = new Float32Array(count * m.cols),
): Float32Array<ArrayBufferLike> {
  const { cols, values, scales } = m;
  for (let r = 0; r < count; r++) {
    const scale = scales[first + r]!;
    const from = (first + r) * cols;
    const to = r * cols;
    for (let c = 0; c < cols; c++) out[to + c] = values[from + c]! * scale;
  }
  return out;
}

/**
 * Rows `first` … `first + count − 1` as float32 laid out transposed, [cols, count]: the
 * untransposed right operand of x · rowsᵀ, which is tfjs's fast matMul on wasm (a matMul with
 * transposeB runs 5–8× slower there, measured at 512 × 576 × 1536).
 */
export function dequantizeRowsTransposedInt8(
  m: Int8Rows,
  first: number,
  count: number,
): Float32Array {
  const { cols, values, scales } = m;
  const out = new Float32Array(count * cols);
  for (let r = 0; r < count; r++) {
    const scale = scales[first + r]!;
    const from = (first + r) * cols;
    for (let c = 0, to = r; c < cols; c++, to += count) out[to] = values[from + c]! * scale;
  }
  return out;
}

/** The rows `ids` as float32, [ids.length, cols]: an embedding lookup without the table. */
export function gatherRowsInt8(m: Int8Rows, ids: readonly number[]): Float32Array {
  const { cols, values, scales } = m;
  const out = new Float32Array(ids.length * cols);
  ids.forEach((id, r) => {
    const scale = scales[id]!;
    const from = id * cols;
    const to = r * cols;
    for (let c = 0; c < cols; c++) out[to + c] = values[from + c]! * scale;
  });
  return out;
}
