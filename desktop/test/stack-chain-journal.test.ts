// Reading the chain journal back from disk: a crash can only tear the last line, so that is the
// one damage tolerated; any other bad line stops the start with its entry number, never a chain
// quietly resumed without the transactions after it. (stack-lifecycle.test.ts does the same
// through a real start.)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JournalMismatchError, readJournal } from '../src/stack/chain-journal.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'commons-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const header = {
  kind: 'commons-chain-journal',
  version: 1,
  genesisDate: '2026-01-01T00:00:00.000Z',
  chainId: 31337,
  genesisHash: `0x${'00'.repeat(32)}`,
};
const entries = [1, 2, 3, 4].map((n) => ({
  method: 'eth_sendRawTransaction',
  params: [`0x0${n}`],
  minedTimestamp: 1_767_225_600 + n,
  head: { number: n, hash: `0x${String(n).repeat(64)}` },
}));
const lines = [header, ...entries].map((line) => JSON.stringify(line));

let files = 0;
function journalWith(text: string): string {
  const file = path.join(dir, `journal-${files++}.jsonl`);
  writeFileSync(file, text);
  return file;
}

describe('readJournal', () => {
  it('reads every entry of an intact journal', () => {
    expect(readJournal(journalWith(lines.join('\n') + '\n'))).toEqual({ header, entries });
  });

  it('drops a last line torn by a crash, and only that', () => {
    const torn = lines.join('\n') + '\n{"method":"eth_sendRawTransaction","params":["0x02f8';
    expect(readJournal(journalWith(torn))?.entries).toEqual(entries);
    // Whole but without its newline, the write still did not finish: the writer cuts it off
    // before appending, so replaying it would put a transaction on the chain the file then lacks.
    const unterminated = lines.join('\n');
    expect(readJournal(journalWith(unterminated))?.entries).toEqual(entries.slice(0, -1));
  });

  it('stops at a damaged line in the middle, naming its entry, and leaves the file alone', () => {
    const damaged = lines.map((line, i) => (i === 2 ? line.slice(0, -5) : line)).join('\n') + '\n';
    const file = journalWith(damaged);
    expect(() => readJournal(file)).toThrow(JournalMismatchError);
    expect(() => readJournal(file)).toThrow(/damaged at entry 2 \(line 3\).*--reset/);
    expect(readFileSync(file, 'utf8')).toBe(damaged);
  });

  it('refuses lines that are JSON but not journaled calls, and empty lines', () => {
    for (const bad of ['{}', 'null', '[1]', '', '{"method":"evm_mine","params":[]}']) {
      const text = [...lines.slice(0, 3), bad, ...lines.slice(3)].join('\n') + '\n';
      expect(() => readJournal(journalWith(text)), bad).toThrow(/damaged at entry 3 \(line 4\)/);
    }
  });

  it('treats a journal without a complete header as no journal', () => {
    expect(readJournal(journalWith(''))).toBeNull();
    expect(readJournal(journalWith(lines[0]!.slice(0, 20)))).toBeNull();
    expect(readJournal(journalWith(lines[0]! + '\n'))).toEqual({ header, entries: [] });
  });
});
