// @commons/shared/engine: the model engine, everything a process needs to hold, train, run and
// store the Commons model and the open-weights models members run. Eight folders make it up:
//   model/       the transformer, LoRA, tokenizer, data, training and generation (TensorFlow.js)
//   checkpoint/  weights and update frames as plain typed arrays: codecs, hashing, manifests,
//                checkpoint folders (no ML runtime: the coordinator folds frames without tfjs)
//   backend/     which TensorFlow.js backend runs, and why
//   storage/     crash-safe file writes (atomic replace, fsync) shared by every store
//   formats/     model files read and written without an ML runtime: safetensors, Hugging Face
//                folders, GGUF (blocks, tokenizer metadata, writer)
//   decoder/     the Llama-family decoder (Llama, Qwen2, SmolLM2) with its KV cache and loaders
//   chat/        chat templates, streaming detokenisation, context fitting, multi-turn sessions
//   library/     the member's model library: hub pulls, imports, identity, opening for chat
// Other packages import the engine only from here; files inside shared/ import each other
// directly. Kernels (model/layers.ts) and the data-parallel trainer's worker protocol
// (model/parallel/) stay private: nothing outside the model calls them.
export * from './model/config.ts';
export * from './model/transformer.ts';
export * from './model/lora.ts';
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
export * from './checkpoint/lora-merge.ts';
export * from './checkpoint/update-codec.ts';
export * from './checkpoint/folder.ts';
export * from './checkpoint/hf-checkpoint.ts';

export * from './backend/select.ts';

export * from './storage/atomic-file.ts';
export * from './storage/durable-write.ts';

export * from './formats/errors.ts';
export * from './formats/safetensors.ts';
export * from './formats/hf-folder.ts';
export * from './formats/gguf-blocks.ts';
export * from './formats/gguf.ts';
export * from './formats/gguf-tokenizer.ts';
export * from './formats/gguf-write.ts';

export * from './decoder/config.ts';
export * from './decoder/rope.ts';
export * from './decoder/model.ts';
export * from './decoder/load.ts';
export * from './decoder/random.ts';
export * from './decoder/shapes.ts';
export * from './decoder/gguf.ts';

export * from './chat/tokenizer.ts';
export * from './chat/text-stream.ts';
export * from './chat/context.ts';
export * from './chat/session.ts';

export * from './library/identity.ts';
export * from './library/library.ts';
export * from './library/hub-pull.ts';
export * from './library/import.ts';
export * from './library/open.ts';
