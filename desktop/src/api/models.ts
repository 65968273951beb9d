// models.*: the versions ModelRegistry knows, their lineage, and verified local copies fetched
// from the coordinator's content-addressed model store.
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

export const modelsEvents = {
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
