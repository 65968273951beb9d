import { readFile } from 'node:fs/promises';
import { readCheckpoint } from '../checkpoint/folder.ts';
import { selectBackend } from '../backend/select.ts';
import { loadModel } from '../model/checkpoint.ts';
import { evaluate, evaluationSplit } from '../model/evaluate.ts';
import { UsageError } from './errors.ts';
import { parse } from './options.ts';

export async function modelCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'verify':
      return verify(rest);
    case 'eval':
      return evalCommand(rest);
    case 'info':
      return info(rest);
    default:
      throw new UsageError(`commons model needs one of: verify, eval, info (got "${sub ?? ''}")`);
  }
}

function oneDir(positionals: string[], what: string): string {
  if (positionals.length !== 1)
    throw new UsageError(`commons model ${what} takes one checkpoint folder`);
  return positionals[0]!;
}

async function verify(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { expect: { type: 'string' } }, true);
  const dir = oneDir(positionals, 'verify');
  const { hash, manifest } = await readCheckpoint(
    dir,
    values.expect ? { expectedHash: values.expect } : {},
  );
  console.log(`${hash}  ${dir} (${manifest.kind}, ${manifest.tensors.length} tensors, verified)`);
  return 0;
}

async function evalCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { data: { type: 'string' }, json: { type: 'boolean', default: false } },
    true,
  );
  const dir = oneDir(positionals, 'eval');
  if (!values.data) throw new UsageError('commons model eval needs --data FILE');
  const text = await readFile(values.data, 'utf8');
  await selectBackend();
  const { model, tokenizer } = await loadModel(dir);
  const split = evaluationSplit(tokenizer, text);
  if (split.tokens.length < 2) throw new UsageError(`${values.data} is too short to evaluate`);
  const result = evaluate(model, split);
  model.dispose();
  if (values.json) {
    console.log(
      JSON.stringify({ bitsPerChar: result.bitsPerChar, loss: result.loss, tokens: result.tokens }),
    );
  } else {
    console.log(
      `bits/char ${result.bitsPerChar.toFixed(4)}   loss ${result.loss.toFixed(4)} nats/token   ${result.tokens} tokens`,
    );
  }
  return 0;
}

async function info(args: string[]): Promise<number> {
  const { positionals } = parse(args, {}, true);
  const dir = oneDir(positionals, 'info');
  const { manifest, hash } = await readCheckpoint(dir);
  const params = manifest.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const c = manifest.config;
  const lines = [
    `hash         ${hash}`,
    `kind         ${manifest.kind}${manifest.adapter ? ` (LoRA rank ${manifest.adapter.lora.rank}, α ${manifest.adapter.lora.alpha}, on ${manifest.adapter.lora.targets.join(', ')}; base ${manifest.adapter.baseHash})` : ''}`,
    `model        ${c.nLayer} layers × ${c.nHead} heads × width ${c.nEmbd}, context ${c.blockSize}, vocab ${c.vocabSize}${c.tiedHead ? ', tied head' : ''}`,
    `parameters   ${params.toLocaleString('en-US')} in ${manifest.tensors.length} tensors (${(manifest.weightsByteLength / 1e6).toFixed(2)} MB)`,
    `provenance   ${JSON.stringify(manifest.provenance)}`,
  ];
  console.log(lines.join('\n'));
  return 0;
}
