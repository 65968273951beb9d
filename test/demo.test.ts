// `npm run demo` at its smallest: three members, all contributing, two rounds of FFA-LoRA on the
// genesis model. Each round's candidate (its parent plus the round's adapter) is voted in before
// the next round starts, so the second round trains on the first round's model; every member
// verifies the last one against its base and adapters (contributors fetch only the adapter);
// the report and its charts are written. Then `--base`: the same lifecycle on a tiny random
// Llama-family model taken from a model library.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseEther } from 'ethers';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEMO_DEFAULTS,
  GENESIS_DIR,
  readBaseCheckpoint,
  resolveBase,
  runDemo,
} from '@commons/desktop/demo';
import {
  importModel,
  ModelLibrary,
  parseDecoderConfig,
  randomDecoderWeights,
  writeHfFolder,
} from '@commons/shared/engine';

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
    const genesis = await readBaseCheckpoint(GENESIS_DIR);
    expect(report.model.genesis).toBe(genesis.hash);
    expect(report.policy.adapter).toEqual({
      rule: 'ffa-lora',
      rank: 8,
      alpha: 16,
      targets: ['q_proj', 'v_proj'],
    });
    expect(first!.baseModel).toBe(report.model.genesis);
    expect(second!.baseModel).toBe(first!.candidate);
    // The active version is genesis with both rounds' adapters folded in.
    expect(report.model.adapters).toBe(2);
    expect(second!.epsilon!).toBeGreaterThan(first!.epsilon!);
    expect(report.activeModel).toBe(second!.candidate);

    expect(report.members).toHaveLength(4);
    for (const member of report.members) {
      expect(member.verifiedHash).toBe(report.activeModel);
      expect(member.reply!.length).toBeGreaterThan(0);
      // Contributors held the parent: they fetched the adapter alone.
      expect(member.adapterOnly).toBe(member.contributes);
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

  it('--base runs the same lifecycle on a model from the library', async () => {
    const work = await mkdtemp(path.join(tmpdir(), 'commons-demo-base-'));
    try {
      // A tiny random Llama-family model with the genesis tokenizer, imported into a library.
      const config = {
        model_type: 'llama',
        vocab_size: 512,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 64,
        tie_word_embeddings: true,
      };
      const folder = path.join(work, 'Tiny-Llama');
      await writeHfFolder(folder, {
        config,
        tensors: randomDecoderWeights(parseDecoderConfig(config), 5),
      });
      for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
        await copyFile(path.join(GENESIS_DIR, file), path.join(folder, file));
      }
      const library = new ModelLibrary(path.join(work, 'library'));
      await importModel(library, folder, { licence: 'apache-2.0' });
      const base = await resolveBase('tiny-llama', library);
      const { report } = await runDemo({
        ...DEMO_DEFAULTS,
        base,
        out: path.join(work, 'report.md'),
        members: 3,
        contributors: 3,
        rounds: 1,
        seed: 4,
      });
      expect(report.model.genesis).toBe((await readBaseCheckpoint(folder)).hash);
      expect(report.model.params).toBeLessThan(40_000);
      expect(report.rounds[0], report.rounds[0]?.reason ?? '').toMatchObject({
        outcome: 'published',
        accepted: 3,
      });
      expect(report.model.adapters).toBe(1);
      for (const member of report.members) expect(member.verifiedHash).toBe(report.activeModel);
      // A GGUF file is not a base to train: refused by name.
      const gguf = path.join(work, 'tiny.gguf');
      await writeFile(gguf, 'GGUF');
      await expect(resolveBase(gguf, library)).rejects.toThrow(
        /GGUF file, quantised for inference/,
      );
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
