// models.*: the versions ModelRegistry knows, their lineage, and verified local copies fetched
// from the coordinator's content-addressed model store; and the member's library of open-weights
// models (Llama, Qwen2, SmolLM2: pulled from the hub or imported from disk), each of which can be
// proposed as the community's base model.
import { z } from 'zod';
import { method } from './define.ts';
import { hashSchema, noInput, type Epsilon } from './schemas.ts';

/** The local copy of a version: absent, or present and checked against the registered hash. */
export interface LocalCopy {
  downloaded: boolean;
  /** sha256 of the copy matched the hash on chain when it was last checked. */
  verified: boolean;
  /** Bytes on disk (manifest + weights), 0 when absent. */
  bytes: number;
}

export interface ModelVersionView {
  /** 0x-prefixed sha256 (bytes32), as the registry stores it. */
  contentHash: string;
  parentHash: string | null;
  /**
   * The full model this version builds on: itself for a full version (genesis, a full-delta
   * round), else its nearest full ancestor. 0x-prefixed.
   */
  baseHash: string;
  /**
   * The LoRA adapter that, folded into the parent, gives this version (0x-prefixed); null for a
   * full version. A member holding the parent downloads only this.
   */
  adapterHash: string | null;
  /** Hashes of the versions trained from this one. */
  children: string[];
  uri: string;
  roundId: number;
  valBpc: number;
  /** The coordinator's accounting for this version ('none': trained without noise). */
  epsilon: Epsilon;
  delta: number;
  registrant: string;
  /** Unix seconds. */
  registeredAt: number;
  active: boolean;
  local: LocalCopy;
}

export interface ModelList {
  active: string;
  /** In registration order; parent/children give the lineage tree (roots have parentHash null). */
  versions: ModelVersionView[];
}

const hashInput = z.strictObject({ hash: hashSchema });

/** A model's name in the library: what `commons model list` shows. */
export const libraryNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, 'a library model name (lowercase letters, digits, . _ -)');

/** A licence as the hub names it: "apache-2.0", "llama3.2", "mit". */
export const licenceSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$/, 'a licence identifier such as apache-2.0');

/** What the memory estimate says about running a library model here. */
export interface LibraryMemory {
  parameters: number;
  /** Bytes it needs with the chat context (float32 weights, or int8 where only that fits). */
  totalBytes: number;
  availableBytes: number;
  /** How the weights would be held: 'f32', or 'int8' (slower) where only that fits. */
  weights: 'f32' | 'int8';
  fits: boolean;
  /** The plain message a member reads when it will not fit (what it needs, what there is). */
  message: string | null;
}

export interface LibraryModelView {
  name: string;
  format: 'hf' | 'gguf';
  /** Bytes of its files. */
  bytes: number;
  files: number;
  /** sha256 of the canonical manifest of its files (64 hex, no 0x). */
  identity: string;
  licence: string | null;
  /** Where it came from: a hub repository (org/name) or the path it was imported from. */
  source: { kind: 'hub' | 'import' | 'export'; from: string };
  /** The name a base-model proposal records on chain (the hub repository, else the library name). */
  publicName: string;
  addedAt: string;
  /** Null when its config could not be read (the reason is in `problem`). */
  memory: LibraryMemory | null;
  problem: string | null;
  /** Recorded on chain as a base model; null when the chain could not be asked. */
  recorded: boolean | null;
  /** It is the community's base model (false when the chain could not be asked). */
  communityBase: boolean;
}

/** A base model as ModelRegistry records it. */
export interface BaseModelView {
  identity: string;
  format: string;
  licence: string;
  name: string;
  registrant: string;
  registeredAt: number;
}

export interface LibraryList {
  /** The library folder (~/.commons/models unless configured). */
  root: string;
  models: LibraryModelView[];
  /** The community base model; null when none is chosen or the chain could not be asked. */
  baseModel: BaseModelView | null;
  /** Why the chain could not be asked, when it could not. */
  chainError: string | null;
}

export const modelsMethods = {
  'models.list': method<ModelList>()(
    noInput,
    'Every registered version with metrics, ε, active flag and local copy status.',
  ),
  'models.lineage': method<string[]>()(
    hashInput,
    'A version, its parent, ... genesis, as the registry records them.',
  ),
  'models.download': method<ModelVersionView>()(
    hashInput,
    'Fetches manifest.json and weights.bin from the coordinator, verifies the sha256 against the chain, then keeps them; integrity if they do not match.',
  ),
  'models.verify': method<ModelVersionView>()(
    hashInput,
    'Re-hashes the local copy; integrity (and the copy is removed) if it no longer matches.',
  ),
  'models.remove': method<ModelVersionView>()(
    hashInput,
    'Deletes the local copy (not the active one while chat has it loaded).',
  ),
};

export const libraryMethods = {
  'models.library': method<LibraryList>()(
    noInput,
    'The member’s open-weights models: format, size, identity, licence, the memory each needs here, and which the chain records as base models.',
  ),
  'models.pull': method<LibraryModelView>()(
    z.strictObject({
      repo: z
        .string()
        .regex(/^[\w.-]+\/[\w.-]+$/, 'a hub repository as org/name')
        .max(200),
      file: z
        .string()
        .regex(/^[\w.-]+\.gguf$/i, 'a .gguf file name')
        .optional(),
      revision: z
        .string()
        .regex(/^[\w./-]{1,100}$/, 'a branch, tag or commit')
        .optional(),
      name: libraryNameSchema.optional(),
    }),
    'Downloads a model from the Hugging Face hub into the library (resuming, each file checked against the hub’s sha256), with models.pullProgress events.',
  ),
  'models.import': method<LibraryModelView>()(
    z.strictObject({
      path: z.string().min(1).max(4096),
      name: libraryNameSchema.optional(),
      licence: licenceSchema.optional(),
      copy: z.boolean().default(false),
    }),
    'Adds a Hugging Face folder or a .gguf file already on this machine (left where it is unless copy); models.pullProgress says when hashing starts and ends.',
  ),
  'models.delete': method<{ name: string; keptFilesAt: string | null }>()(
    z.strictObject({ name: libraryNameSchema }),
    'Removes a model from the library (an imported file outside it is left where it is); conflict while chat has it loaded.',
  ),
  'models.proposeBase': method<{ id: string; identity: string }>()(
    z.strictObject({
      name: libraryNameSchema,
      licence: licenceSchema.optional(),
      description: z.string().max(10_000).optional(),
    }),
    'Re-hashes the model’s files, then proposes (with the unlocked wallet) recording it as the community’s base model; invalid-argument when its licence is unknown and none is given.',
  ),
};

export const modelsEvents = {
  /** A library pull or import under way: bytes of the current file and of the whole model. */
  'models.pullProgress': z.object({
    target: z.string(),
    file: z.string(),
    bytes: z.number(),
    totalBytes: z.number(),
  }),
  'models.progress': z.object({ hash: z.string(), done: z.number(), total: z.number() }),
  /**
   * Governance made another version active (seen on chain): first with ready false, then, once
   * the core has downloaded it and checked it against the registered hash, ready true (or an
   * error saying why it could not). Chat switches at its next reply, or now with chat.load.
   */
  'models.activated': z.object({
    hash: z.string(),
    ready: z.boolean(),
    error: z.string().nullable(),
  }),
};
