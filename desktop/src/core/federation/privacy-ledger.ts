// The member's ε ledger: what each round they contributed to cost in differential privacy, to
// be held against the policy's lifetime budget. Kept small on purpose: shared/src/privacy/dp
// has the accountant but (yet) no PrivacyLedger class, so the core records the ε that each
// published round declares on chain (ModelRegistry's epsilon), summed across rounds (basic
// composition: an upper bound, never an underestimate). Swap in shared's ledger when it lands.
import { join } from 'node:path';
import { z } from 'zod';
import { readIfExists, writeFileAtomic } from '../storage/atomic-file.ts';
import { Serial } from '../storage/serial.ts';

const entrySchema = z.object({
  roundId: z.number().int(),
  epsilon: z.number().nonnegative(),
  at: z.string(),
});
const ledgerSchema = z.object({ entries: z.array(entrySchema) });
export type LedgerEntry = z.infer<typeof entrySchema>;

export interface PrivacyLedger {
  entries(): Promise<LedgerEntry[]>;
  /** Records a round's ε once (a round recorded again is ignored). */
  record(roundId: number, epsilon: number): Promise<void>;
  spent(): Promise<number>;
}

export class FilePrivacyLedger implements PrivacyLedger {
  readonly #file: string;
  readonly #serial = new Serial();

  constructor(dataDir: string) {
    this.#file = join(dataDir, 'federation', 'privacy-ledger.json');
  }

  async entries(): Promise<LedgerEntry[]> {
    const bytes = await readIfExists(this.#file);
    return bytes ? ledgerSchema.parse(JSON.parse(bytes.toString('utf8'))).entries : [];
  }

  record(roundId: number, epsilon: number): Promise<void> {
    return this.#serial.run(async () => {
      const entries = await this.entries();
      if (entries.some((e) => e.roundId === roundId)) return;
      entries.push({ roundId, epsilon, at: new Date().toISOString() });
      await writeFileAtomic(this.#file, JSON.stringify({ entries }, null, 2) + '\n');
    });
  }

  async spent(): Promise<number> {
    return (await this.entries()).reduce((sum, e) => sum + e.epsilon, 0);
  }
}
