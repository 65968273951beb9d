// `commons model propose`: a member proposes a model from their library as the community's
// base model, as a separate process against a devnet; holders pass it and the chain then names
// exactly the identity the library computed.
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonRpcProvider, Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommonsClient } from '@commons/chain';
import { startDevnet, type Devnet } from '@commons/contracts';
import {
  ModelLibrary,
  parseDecoderConfig,
  randomDecoderWeights,
  writeHfFolder,
} from '@commons/shared/engine';

const COMMONS_BIN = fileURLToPath(new URL('../shared/bin/commons.ts', import.meta.url));

let dir: string;
let devnet: Devnet;
let library: string;
let keyFile: string;

function commons(args: string[]) {
  const r = spawnSync(process.execPath, [COMMONS_BIN, ...args, '--library', library], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-base-model-'));
  devnet = await startDevnet(dir, {});
  library = path.join(dir, 'library');
  keyFile = path.join(dir, 'proposer.key');
  await writeFile(keyFile, `${devnet.keys[1]!}\n`);
  await chmod(keyFile, 0o600);
  // A tiny Llama-shaped folder; its model card states no licence.
  const config = {
    model_type: 'llama',
    vocab_size: 64,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 64,
    tie_word_embeddings: true,
  };
  const folder = path.join(dir, 'Tiny-Llama');
  await writeHfFolder(folder, {
    config,
    tensors: randomDecoderWeights(parseDecoderConfig(config), 3),
  });
  await writeFile(
    path.join(folder, 'tokenizer.json'),
    JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: {}, merges: [] } }),
  );
  await writeFile(path.join(folder, 'tokenizer_config.json'), '{}');
  await writeFile(path.join(folder, 'README.md'), '# A tiny model\n');
  const imported = commons(['model', 'import', folder]);
  expect(imported.err).toBe('');
  expect(imported.out).toMatch(/licence unknown/);
});

afterAll(async () => {
  await devnet?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('commons model propose', () => {
  it('needs the licence when the library does not know it, then proposes, and the vote records it', async () => {
    const chainFlags = ['--rpc', devnet.rpcUrl, '--addresses', devnet.addressesFile];
    const refused = commons(['model', 'propose', 'tiny-llama', ...chainFlags, '--key', keyFile]);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/the licence of tiny-llama is not known: state it with --licence/);

    const proposed = commons([
      'model',
      'propose',
      'tiny-llama',
      ...chainFlags,
      '--key',
      keyFile,
      '--licence',
      'apache-2.0',
    ]);
    expect(proposed.err).toBe('');
    expect(proposed.code).toBe(0);
    const id = BigInt(/^proposal (\d+):/.exec(proposed.out)?.[1] ?? '0');
    // The licence the member stated is now the library's.
    const entry = await new ModelLibrary(library).get('tiny-llama');
    expect(entry.licence).toBe('apache-2.0');

    const provider = new JsonRpcProvider(devnet.rpcUrl, undefined, { cacheTimeout: -1 });
    const chain = new CommonsClient(provider, devnet.addresses);
    const voter = chain.withSigner(new Wallet(devnet.keys[2]!, provider));
    const advance = async (seconds: number) => {
      await provider.send('evm_increaseTime', [seconds]);
      await provider.send('evm_mine', []);
    };
    try {
      const proposal = await chain.proposal(id);
      expect(proposal.description).toMatch(/^Record tiny-llama as the community's base model/);
      expect(proposal.decoded.map((d) => d?.function)).toEqual(['recordBaseModel', 'setBaseModel']);
      const settings = await chain.governanceSettings();
      await advance(settings.votingDelay + 1);
      await voter.castVote(id, 'for');
      await advance(settings.votingPeriod + 1);
      await voter.queue(id);
      await advance(settings.timelockDelay + 1);
      await voter.execute(id);
      expect(await chain.baseModel()).toMatchObject({
        identity: `0x${entry.identity}`,
        format: 'hf-folder',
        licence: 'apache-2.0',
        name: 'tiny-llama',
      });
    } finally {
      provider.destroy();
    }

    // Proposing it again says why not, before any transaction.
    const again = commons(['model', 'propose', 'tiny-llama', ...chainFlags, '--key', keyFile]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already the community's base model/);
  });
});
