import { float32ArrayToFloat16Bits } from '../checkpoint/float16.ts';
import { ModelFormatError } from './errors.ts';

/**
 * ggml's tensor encodings as GGUF files store them (ggml-quants.c, dequantize_row_*), for
 * the types LM Studio's and Ollama's files use: F32, F16, BF16, Q8_0, Q4_0, and the k-quants
 * Q4_K and Q6_K (a Q4_K_M file mixes both). Values are grouped in blocks that each carry
 * their own scale(s) as float16, so a row dequantises block by block.
 */
export const GGML_TYPE = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 8,
  Q4_K: 12,
  Q6_K: 14,
  BF16: 30,
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** Values per block and bytes per block of each type. */
export const BLOCK: Record<GgmlTypeName, { values: number; bytes: number }> = {
  F32: { values: 1, bytes: 4 },
  F16: { values: 1, bytes: 2 },
  BF16: { values: 1, bytes: 2 },
  // d (f16) + 32 × int8
  Q8_0: { values: 32, bytes: 34 },
  // d (f16) + 32 × 4-bit
  Q4_0: { values: 32, bytes: 18 },
  // d, dmin (f16) + 12 bytes of 6-bit scales and mins + 256 × 4-bit
  Q4_K: { values: 256, bytes: 144 },
  // 128 bytes low 4 bits + 64 bytes high 2 bits + 16 × int8 scales + d (f16)
  Q6_K: { values: 256, bytes: 210 },
};

export function ggmlTypeName(type: number): GgmlTypeName | null {
  for (const [name, id] of Object.entries(GGML_TYPE)) if (id === type) return name as GgmlTypeName;
  return null;
}

/** Bytes a tensor of `count` values takes in `type`; refuses counts that split a block. */
export function encodedBytes(type: GgmlTypeName, count: number, what: string): number {
  const { values, bytes } = BLOCK[type];
  if (count % values !== 0) {
    throw new ModelFormatError(
      'SHAPE_MISMATCH',
      `${what}: ${count} values do not fill whole ${type} blocks of ${values}`,
    );
  }
  return (count / values) * bytes;
}

const HALF = new Float32Array(65_536);
{
  const u32 = new Uint32Array(1);
  const f32 = new Float32Array(u32.buffer);
  for (let h = 0; h < 65_536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) {
      HALF[h] = (sign ? -1 : 1) * mantissa * 2 ** -24;
      continue;
    }
    u32[0] =
      exponent === 0x1f
        ? sign | 0x7f800000 | (mantissa << 13)
        : sign | ((exponent + 112) << 23) | (mantissa << 13);
    HALF[h] = f32[0]!;
  }
}

/** The float32 value of float16 bits. */
export function half(bits: number): number {
  return HALF[bits]!;
}

/** Dequantises `count` values of `type` from `bytes` (little-endian, as GGUF stores them). */
export function dequantize(type: GgmlTypeName, bytes: Uint8Array, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  const blocks = count / BLOCK[type].values;
  const size = BLOCK[type].bytes;
  switch (type) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = HALF[view.getUint16(2 * i, true)]!;
      return out;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'Q8_0':
      for (let b = 0; b < blocks; b++) {
        const at = b * size;
        const d = HALF[view.getUint16(at, true)]!;
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * view.getInt8(at + 2 + j);
      }
      return out;
    case 'Q4_0':
      for (let b = 0; b < blocks; b++) {
        const at = b * size;
        const d = HALF[view.getUint16(at, true)]!;
        for (let j = 0; j < 16; j++) {
          const q = bytes[at + 2 + j]!;
          out[b * 32 + j] = d * ((q & 0x0f) - 8);
          out[b * 32 + j + 16] = d * ((q >> 4) - 8);
        }
      }
      return out;
    case 'Q4_K':
      for (let b = 0; b < blocks; b++) dequantizeQ4K(bytes, view, b * size, out, b * 256);
      return out;
    case 'Q6_K':
      for (let b = 0; b < blocks; b++) dequantizeQ6K(bytes, view, b * size, out, b * 256);
      return out;
  }
}

/** get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K block's 12 packed bytes. */
function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j]! & 63, q[at + j + 4]! & 63];
  const scale = (q[at + j + 4]! & 0x0f) | ((q[at + j - 4]! >> 6) << 4);
  const min = (q[at + j + 4]! >> 4) | ((q[at + j]! >> 6) << 4);
  return [scale, min];
}

function dequantizeQ4K(q: Uint8Array, view: DataView, at: number, out: Float32Array, o: number) {
  const d = HALF[view.getUint16(at, true)]!;
  const dmin = HALF[view.getUint16(at + 2, true)]!;
  const scales = at + 4;
  let qs = at + 16;
  let y = o;
  // Four groups of 64 values: the low nibbles of 32 bytes, then their high nibbles, each
  // sub-block of 32 with its own scale and min.
  for (let group = 0, is = 0; group < 4; group++, is += 2) {
    const [sc1, m1] = scaleMinK4(is, q, scales);
    const [sc2, m2] = scaleMinK4(is + 1, q, scales);
    const d1 = d * sc1;
    const min1 = dmin * m1;
    const d2 = d * sc2;
    const min2 = dmin * m2;
    for (let l = 0; l < 32; l++) out[y + l] = d1 * (q[qs + l]! & 0x0f) - min1;
    for (let l = 0; l < 32; l++) out[y + 32 + l] = d2 * (q[qs + l]! >> 4) - min2;
    qs += 32;
    y += 64;
  }
}

function dequantizeQ6K(q: Uint8Array, view: DataView, at: number, out: Float32Array, o: number) {
  let ql = at;
  let qh = at + 128;
  let sc = at + 192;
  const d = HALF[view.getUint16(at + 208, true)]!;
  let y = o;
  // Two halves of 128 values; each value is 4 low bits from ql and 2 high bits from qh,
  // offset by 32, times its 16-value sub-block's int8 scale.
  for (let n = 0; n < 2; n++) {
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const h = q[qh + l]!;
      const q1 = ((q[ql + l]! & 0x0f) | ((h & 3) << 4)) - 32;
      const q2 = ((q[ql + l + 32]! & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
      const q3 = ((q[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const q4 = ((q[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
      out[y + l] = d * view.getInt8(sc + is) * q1;
      out[y + l + 32] = d * view.getInt8(sc + is + 2) * q2;
      out[y + l + 64] = d * view.getInt8(sc + is + 4) * q3;
      out[y + l + 96] = d * view.getInt8(sc + is + 6) * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

/**
 * Encodes float32 values as F32, F16 or Q8_0 (what `commons model export --gguf` writes):
 * Q8_0 as ggml's quantize_row_q8_0_ref does, d = max|x| / 127 per block of 32, q = round(x / d).
 */
export function quantize(type: 'F32' | 'F16' | 'Q8_0', values: Float32Array): Uint8Array {
  if (type === 'F32') return new Uint8Array(new Float32Array(values).buffer);
  if (type === 'F16') return new Uint8Array(float32ArrayToFloat16Bits(values).buffer);
  const blocks = encodedBytes('Q8_0', values.length, 'Q8_0 tensor') / 34;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]!));
    const d = amax / 127;
    const id = d === 0 ? 0 : 1 / d;
    view.setUint16(b * 34, float32ArrayToFloat16Bits(Float32Array.of(d))[0]!, true);
    for (let j = 0; j < 32; j++) {
      // C roundf: halves round away from zero (Math.round would take -2.5 to -2).
      const v = values[b * 32 + j]! * id;
      view.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
    }
  }
  return out;
}
