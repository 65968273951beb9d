import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readCheckpoint } from '../checkpoint/folder.ts';
import { HF_CHECKPOINT_FILE } from '../checkpoint/hf-checkpoint.ts';
import { selectBackend } from '../backend/select.ts';
import { loadModel } from '../model/checkpoint.ts';
import { evaluate, evaluationSplit } from '../model/evaluate.ts';
import { UsageError } from './errors.ts';
import {
  evalModel,
  exportModel,
  importCommand,
  infoModel,
  list,
  propose,
  pull,
  remove,
  verifyModel,
} from './library.ts';
import { parse } from './options.ts';

export async function modelCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'pull':
      return pull(rest);
    case 'import':
      return importCommand(rest);
    case 'list':
    case 'ls':
      return list(rest);
    case 'rm':
      return remove(rest);
    case 'propose':
      return propose(rest);
  }
  // The rest take one model: a Commons checkpoint (a folder with manifest.json, or a Hugging
  // Face folder Commons wrote, with commons-checkpoint.json: verified against its Commons hash),
  // or an open-weights model (a library name, a Hugging Face folder, a .gguf file).
  const ref = rest.find((a) => !a.startsWith('-'));
  // A path that does not exist goes the checkpoint way, whose error names the missing file;
  // library names never contain a slash.
  const commons =
    ref !== undefined &&
    (existsSync(path.join(ref, 'manifest.json')) ||
      existsSync(path.join(ref, HF_CHECKPOINT_FILE)) ||
      (/[/\\]/.test(ref) && !existsSync(ref)));
  const open = ref === undefined ? [] : ([ref, rest.filter((a) => a !== ref)] as const);
  switch (sub) {
    case 'verify':
      return commons || ref === undefined ? verify(rest) : verifyModel(open[0]!, [...open[1]!]);
    case 'eval':
      return commons || ref === undefined ? evalCommand(rest) : evalModel(open[0]!, [...open[1]!]);
    case 'info':
      return commons || ref === undefined ? info(rest) : infoModel(open[0]!, [...open[1]!]);
    case 'export':
      if (ref === undefined) throw new UsageError('commons model export takes one model');
      return exportModel(open[0]!, [...open[1]!]);
    default:
      throw new UsageError(
        `commons model needs one of: pull, import, list, rm, propose, verify, info, eval, export (got "${sub ?? ''}")`,
      );
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
      JSON.stringify({
        bitsPerChar: result.bitsPerChar,
        natsPerToken: result.loss,
        loss: result.loss,
        tokens: result.tokens,
      }),
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
