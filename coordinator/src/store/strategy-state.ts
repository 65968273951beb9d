// A strategy's server-side state between rounds (FedOpt's moments, for example): its tensors go
// into the blob store by hash, its small JSON part and those hashes into the database's
// strategy_state row. Saved after each published round; read when the strategy is first used.
import type { StrategyState } from '../strategy/strategy.ts';
import type { BlobStore } from './blobs.ts';
import type { CoordinatorDatabase } from './database.ts';

/** The row's state: the strategy's JSON and the blob hash of each of its tensors. */
interface SavedStrategyState {
  json: Record<string, unknown>;
  tensors: Record<string, string>;
}

export async function saveStrategyState(
  db: CoordinatorDatabase,
  blobs: BlobStore,
  name: string,
  roundId: number,
  state: StrategyState,
): Promise<void> {
  const tensors: Record<string, string> = {};
  for (const [key, values] of Object.entries(state.tensors)) {
    tensors[key] = await blobs.put(
      new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    );
  }
  const saved: SavedStrategyState = { json: state.json, tensors };
  db.saveStrategyState(name, { roundId, state: saved });
}

/** The strategy's saved state, or undefined when it has none yet. */
export function loadStrategyState(
  db: CoordinatorDatabase,
  blobs: BlobStore,
  name: string,
): StrategyState | undefined {
  const row = db.loadStrategyState(name);
  if (!row) return undefined;
  const saved = row.state as SavedStrategyState;
  const tensors: Record<string, Float32Array> = {};
  for (const [key, hash] of Object.entries(saved.tensors)) {
    const bytes = blobs.readSync(hash);
    tensors[key] = new Float32Array(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
    );
  }
  return { json: saved.json, tensors };
}
