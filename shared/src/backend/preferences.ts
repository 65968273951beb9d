// The TensorFlow.js backends Commons knows, fastest first: the one list that the selector tries
// in order and that every settings screen offers. It lives apart from select.ts, which loads
// TensorFlow.js and node:child_process, so that a page's bundle can import the list without
// the ML runtime.

/** Best first: tfjs-node-gpu with a CUDA device, tfjs-node, WebGPU, wasm, plain JavaScript. */
export const BACKEND_ORDER = ['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_ORDER)[number];

/** What a member (settings) or an operator (COMMONS_BACKEND) may ask for: `auto` is the best. */
export const BACKEND_PREFERENCES = ['auto', ...BACKEND_ORDER] as const;
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number];
