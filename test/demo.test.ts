// `npm run demo` at its smallest: three members, all contributing, two rounds. Each round's
// candidate is voted in before the next round starts, so the second round trains the first
// round's model; every member verifies the last one; the report and its charts are written.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseEther } from 'ethers';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_DEFAULTS, runDemo } from '@commons/desktop/demo';

let dir: string | undefined;

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('npm run demo', () => {
  it('trains, votes each candidate in, has every member verify it, pays the contributors', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'commons-demo-'));
    const { report, files } = await runDemo({
      ...DEMO_DEFAULTS,
      out: path.join(dir, 'report.md'),
      members: 4,
      contributors: 3,
      rounds: 2,
      seed: 3,
    });
    const [first, second] = report.rounds;
    expect(report.rounds).toHaveLength(2);
    for (const round of report.rounds) {
      expect(round, round.reason ?? '').toMatchObject({ outcome: 'published', accepted: 3 });
      expect(round.proposal?.state).toBe('executed');
    }
    expect(first!.baseModel).toBe(report.model.genesis);
    expect(second!.baseModel).toBe(first!.candidate);
    expect(second!.epsilon!).toBeGreaterThan(first!.epsilon!);
    expect(report.activeModel).toBe(second!.candidate);

    expect(report.members).toHaveLength(4);
    for (const member of report.members) {
      expect(member.verifiedHash).toBe(report.activeModel);
      expect(member.reply!.length).toBeGreaterThan(0);
    }
    // The round budget (10,000 tokens by default) split three ways, twice.
    const perRound = parseEther('10000') / 3n;
    const contributors = report.members.filter((m) => m.contributes);
    expect(contributors.map((m) => m.name)).toContain('you');
    for (const member of contributors) expect(BigInt(member.claimed!)).toBe(2n * perRound);

    const markdown = await readFile(files[0]!, 'utf8');
    expect(markdown).toContain(report.activeModel.slice(0, 12));
    for (const tx of report.transactions) expect(markdown).toContain(tx.hash);
    for (const svg of files.slice(1))
      expect(await readFile(svg, 'utf8')).toMatch(/^<svg[^]*<\/svg>\n$/);
  });
});
