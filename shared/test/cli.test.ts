import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import { saveModel } from '../src/model/checkpoint.ts';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import { Transformer } from '../src/model/transformer.ts';

// The CLI as people run it: a separate process, exit codes, one-line errors.
const BIN = resolve(import.meta.dirname, '../bin/commons.ts');
const NOTES =
  'Dear diary, today the garden gnome moved again. The gnome is watching the roses.\n'.repeat(30);

function commons(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    input,
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

let dir: string;
let modelDir: string;
/** Same shape as modelDir, other weights: a later community version. */
let nextDir: string;
/** Another width: a version an adapter cannot follow to. */
let widerDir: string;

beforeAll(async () => {
  await selectBackend();
  dir = mkdtempSync(join(tmpdir(), 'commons-cli-'));
  const tokenizer = ChatTokenizer.train(NOTES + 'To be or not to be, that is the question.', 300);
  const model = Transformer.create(
    {
      vocabSize: tokenizer.vocabSize,
      blockSize: 32,
      nLayer: 1,
      nHead: 2,
      nEmbd: 16,
      dropout: 0,
      bias: true,
      tiedHead: true,
    },
    1,
  );
  modelDir = join(dir, 'model');
  await saveModel(modelDir, model, tokenizer, { name: 'test' });
  const next = Transformer.create(model.config, 2);
  nextDir = join(dir, 'next');
  await saveModel(nextDir, next, tokenizer, { name: 'next' });
  next.dispose();
  const wider = Transformer.create({ ...model.config, nEmbd: 32 }, 3);
  widerDir = join(dir, 'wider');
  await saveModel(widerDir, wider, tokenizer, { name: 'wider' });
  wider.dispose();
  model.dispose();
  mkdirSync(join(dir, 'notes/sub'), { recursive: true });
  writeFileSync(join(dir, 'notes/a.md'), NOTES);
  writeFileSync(join(dir, 'notes/sub/b.txt'), NOTES);
  writeFileSync(join(dir, 'notes/ignored.png'), 'not text');
});

describe('commons CLI', () => {
  it('doctor reports the backend and why faster ones were not used', () => {
    const r = commons(['doctor', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(typeof report.backend).toBe('string');
    expect(Array.isArray(report.skipped)).toBe(true);
  });

  it('model verify passes a good checkpoint and catches a flipped byte', () => {
    const ok = commons(['model', 'verify', modelDir]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^[0-9a-f]{64} /);

    const weights = join(modelDir, 'weights.bin');
    const bytes = readFileSync(weights);
    bytes[100] = bytes[100]! ^ 0x01;
    const tampered = join(dir, 'tampered');
    mkdirSync(tampered);
    writeFileSync(join(tampered, 'weights.bin'), bytes);
    writeFileSync(join(tampered, 'manifest.json'), readFileSync(join(modelDir, 'manifest.json')));
    const bad = commons(['model', 'verify', tampered]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^commons: HASH_MISMATCH/);
    expect(bad.err.trim().split('\n')).toHaveLength(1); // one line, no stack trace
  });

  it('model eval prints bits per character as JSON, and info describes the checkpoint', () => {
    writeFileSync(join(dir, 'eval.txt'), NOTES);
    const r = commons(['model', 'eval', modelDir, '--data', join(dir, 'eval.txt'), '--json']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out);
    expect(result.bitsPerChar).toBeGreaterThan(0);
    expect(result.loss).toBeGreaterThan(0);
    expect(result.tokens).toBeGreaterThan(10);
    const info = commons(['model', 'info', modelDir]);
    expect(info.out).toMatch(/1 layers × 2 heads × width 16/);
  });

  it('train --lora lowers the loss on the notes and chat --adapter uses the adapter', () => {
    const out = join(dir, 'adapter');
    const r = commons([
      'train',
      '--data',
      join(dir, 'notes'),
      '--model',
      modelDir,
      '--out',
      out,
      '--steps',
      '40',
      '--lora',
      '--lr',
      '1e-2',
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/2 file\(s\)/); // the .png was skipped
    const before = Number(/before: ([\d.]+) bits\/char/.exec(r.err)![1]);
    const after = Number(/after: +([\d.]+) bits\/char/.exec(r.err)![1]);
    expect(after).toBeLessThan(before);
    const info = commons(['model', 'info', out]);
    expect(info.out).toMatch(/kind +adapter \(LoRA rank 8/);

    const chat = commons(
      ['chat', '--model', modelDir, '--adapter', out, '--max-tokens', '8', '--seed', '1'],
      'Dear diary\n',
    );
    expect(chat.code, chat.err).toBe(0);
    expect(chat.err).toMatch(/personal adapter on/);
    expect(chat.out.startsWith('Dear diary')).toBe(true);
    expect(chat.out.length).toBeGreaterThan('Dear diary\n'.length);

    // The next community version has the same shape: the personal adapter follows, and says so.
    const carried = commons(
      ['chat', '--model', nextDir, '--adapter', out, '--max-tokens', '4', '--seed', '1'],
      'Dear diary\n',
    );
    expect(carried.code, carried.err).toBe(0);
    expect(carried.err).toMatch(
      /personal adapter trained on [0-9a-f]{12}…, layered on [0-9a-f]{12}… \(same shape\)/,
    );
    expect(carried.err).toMatch(/personal adapter on/);
    // A version of another width: refused by name, with what to do.
    const wider = commons(['chat', '--model', widerDir, '--adapter', out], '');
    expect(wider.code).toBe(1);
    expect(wider.err).toMatch(/ADAPTER_MISMATCH.*whose shape differs.*train a new one/);
  });

  it('refuses an adapter trained on another model, and user mistakes, in one line', () => {
    const other = commons(['chat', '--model', modelDir, '--adapter', modelDir], '');
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/holds a full model, not an adapter/);
    const usage = commons(['train']);
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/needs --data/);
    const missing = commons(['model', 'verify', join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/MISSING_FILE/);
    const flag = commons(['chat', '--temperature', 'hot']);
    expect(flag.code).toBe(2);
    expect(flag.err).toMatch(/--temperature hot is not valid/);
  });
});
