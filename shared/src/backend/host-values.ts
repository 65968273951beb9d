import * as tf from '@tensorflow/tfjs';

/**
 * Float32 tensors' values read and written in place where tfjs keeps them in host memory
 * (the wasm and cpu backends), for the host passes and kernels that work beside tfjs
 * (model/layers.ts). `dataSync` on wasm copies a tensor out of the backend's memory, and
 * `tf.tensor` copies values in: at the reference model's training shapes those copies and
 * the garbage they left were about a sixth of a step.
 */

/** The parts of tfjs's wasm backend this reads: its heap and where each tensor lies in it. */
interface WasmBackendMemory {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  write(values: null, shape: number[], dtype: 'float32'): tf.DataId;
}

function wasmBackend(): WasmBackendMemory | null {
  return tf.getBackend() === 'wasm' ? (tf.backend() as unknown as WasmBackendMemory) : null;
}

/**
 * A float32 tensor's values, not to be written to. On wasm this is a view into the backend's
 * memory: valid only until tfjs next allocates (growing the memory detaches it), so read it
 * at once and keep the tensor, never the view. Elsewhere, `dataSync`'s array.
 */
export function readValues(t: tf.Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new TypeError(`readValues takes float32, not ${t.dtype}`);
  const backend = wasmBackend();
  const at = backend?.dataIdMap.get(t.dataId)?.memoryOffset;
  if (!backend || at === undefined) return t.dataSync() as Float32Array;
  return new Float32Array(backend.wasm.HEAPU8.buffer, at, t.size);
}

/**
 * A new float32 tensor of `shape` whose values `fill` writes (every one of them: on wasm the
 * memory starts as whatever it held before). On wasm `fill` gets the tensor's own memory; it
 * may take readValues views but must not run tfjs ops.
 */
export function filledTensor<R extends tf.Rank>(
  shape: tf.ShapeMap[R],
  fill: (values: Float32Array) => void,
): tf.Tensor<R> {
  const backend = wasmBackend();
  if (!backend) {
    const values = new Float32Array(tf.util.sizeFromShape(shape));
    fill(values);
    return tf.tensor(values, shape, 'float32') as tf.Tensor<R>;
  }
  const dataId = backend.write(null, shape, 'float32');
  const t = tf
    .engine()
    .makeTensorFromDataId(dataId, shape, 'float32', backend as unknown as tf.KernelBackend);
  fill(readValues(t));
  return t as tf.Tensor<R>;
}
