/**
 * Checkpoints and update frames, in memory and without any ML runtime, so the coordinator,
 * the desktop core and the browser share them. Reading and writing checkpoint folders is
 * Node only and lives in ./folder.ts, which this module deliberately does not re-export.
 */
export type { HostTensor, NamedTensors } from './tensors.ts';
export { CheckpointError, type CheckpointErrorCode } from './errors.ts';
export { sha256Hex, checkpointHash, type CheckpointIdentity } from './hash.ts';
export { canonicalJson } from './canonical-json.ts';
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  WEIGHTS_ALIGNMENT,
  manifestSchema,
  parseManifest,
  type AdapterInfo,
  type CheckpointKind,
  type Manifest,
  type TensorEntry,
} from './manifest.ts';
export {
  encodeCheckpoint,
  decodeCheckpoint,
  type CheckpointInput,
  type DecodeOptions,
  type DecodedCheckpoint,
  type EncodedCheckpoint,
} from './codec.ts';
export type { FloatDtype } from './dtype.ts';
export { computeDelta, applyDelta, l2Norm } from './delta.ts';
export {
  mergeLora,
  checkAdapterFits,
  loraProjection,
  LORA_A_SUFFIX,
  LORA_B_SUFFIX,
} from './lora-merge.ts';
export { encodeTensors, decodeTensors, type UpdateEncoding } from './update-codec.ts';
