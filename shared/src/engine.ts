// @commons/shared/engine: the model engine, everything a process needs to hold, train, run and
// store the Commons model. Four folders make it up:
//   model/       the transformer, LoRA, tokenizer, data, training and generation (TensorFlow.js)
//   checkpoint/  weights and update frames as plain typed arrays: codecs, hashing, manifests,
//                checkpoint folders (no ML runtime: the coordinator folds frames without tfjs)
//   backend/     which TensorFlow.js backend runs, and why
//   storage/     crash-safe file writes (atomic replace, fsync) shared by every store
// Other packages import the engine only from here; files inside shared/ import each other
// directly. Kernels (model/layers.ts) and the data-parallel trainer's worker protocol
// (model/parallel/) stay private: nothing outside the model calls them.
export * from './model/config.ts';
export * from './model/transformer.ts';
export * from './model/lora.ts';
export * from './model/tokenizer.ts';
export * from './model/corpus.ts';
export * from './model/dataset.ts';
export * from './model/rng.ts';
export * from './model/optimizer.ts';
export * from './model/trainer.ts';
export * from './model/training-loop.ts';
export * from './model/training-state.ts';
export * from './model/evaluate.ts';
export * from './model/sampling.ts';
export * from './model/generate.ts';
export * from './model/checkpoint.ts';

export * from './checkpoint/tensors.ts';
export * from './checkpoint/errors.ts';
export * from './checkpoint/hash.ts';
export * from './checkpoint/canonical-json.ts';
export * from './checkpoint/manifest.ts';
export * from './checkpoint/codec.ts';
export * from './checkpoint/dtype.ts';
export * from './checkpoint/float16.ts';
export * from './checkpoint/delta.ts';
export * from './checkpoint/update-codec.ts';
export * from './checkpoint/folder.ts';

export * from './backend/select.ts';

export * from './storage/atomic-file.ts';
export * from './storage/durable-write.ts';
