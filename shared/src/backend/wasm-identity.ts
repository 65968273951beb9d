import * as tf from '@tensorflow/tfjs';

/**
 * tfjs's Identity kernel on wasm, made to share its input's memory as the cpu backend's
 * does (a reference count, as wasm's own Reshape already keeps) instead of copying it.
 * tfjs runs Identity for every tensor it keeps for a backward pass (`Engine.clone` in
 * saveTensorsForBackwardMode), so on wasm each training step copied every saved activation:
 * about a sixth of a LoRA step at SmolLM2-135M's shape. Sharing is safe because no kernel
 * writes into its inputs, and a variable's `assign` moves it to new memory rather than
 * overwriting the old.
 */
let registered = false;

export function shareIdentityOnWasm(): void {
  if (registered) return;
  registered = true;
  tf.unregisterKernel(tf.Identity, 'wasm');
  tf.registerKernel({
    kernelName: tf.Identity,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const x = inputs.x as tf.TensorInfo;
      (backend as unknown as { incRef(id: tf.DataId): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
}
