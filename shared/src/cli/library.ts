import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CommonsClient, hashToBytes32 } from '@commons/chain';
import { selectBackend } from '../backend/select.ts';
import { ChatTokenizer } from '../chat/tokenizer.ts';
import { decoderTensorShapes, parseDecoderConfig, type DecoderConfig } from '../decoder/config.ts';
import { exportGguf, openGgufTensors, type GgufExportType } from '../decoder/gguf.ts';
import { openHfFolder } from '../formats/hf-folder.ts';
import type { HfTokenizerFiles } from '../formats/gguf-tokenizer.ts';
import type { HostTensor } from '../checkpoint/tensors.ts';
import { importModel } from '../library/import.ts';
import { baseModelDescription, ModelLibrary } from '../library/library.ts';
import { DEFAULT_HUB_URL, pullModel } from '../library/hub-pull.ts';
import {
  availableMemory,
  DEFAULT_CONTEXT,
  chooseWeights,
  gb,
  openChatModel,
  readConfig,
  resolveModel,
  type ModelRef,
} from '../library/open.ts';
import { loadSigner } from './contribute.ts';
import { UsageError } from './errors.ts';
import { numberFlag, parse } from './options.ts';

/**
 * The `commons model` commands for open-weights models: pull, import, list, rm, and
 * verify / info / eval / export on a library name, a model folder or a .gguf file.
 */

const libraryFlag = { library: { type: 'string' } } as const;
const library = (values: { library?: string }) => new ModelLibrary(values.library);

export async function pull(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...libraryFlag,
      revision: { type: 'string' },
      file: { type: 'string' },
      name: { type: 'string' },
      'hub-url': { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 1 || !/^[\w.-]+\/[\w.-]+$/.test(positionals[0]!)) {
    throw new UsageError('commons model pull takes one hub repository, as org/name');
  }
  const bar = byteProgress(process.stderr);
  const entry = await pullModel({
    repo: positionals[0]!,
    library: library(values),
    hubUrl: values['hub-url'] ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_URL,
    ...(values.revision ? { revision: values.revision } : {}),
    ...(values.file ? { file: values.file } : {}),
    ...(values.name ? { name: values.name } : {}),
    ...(process.env.HF_TOKEN ? { token: process.env.HF_TOKEN } : {}),
    onProgress: (p) => bar.update(p.file, p.bytes, p.totalBytes, p.bytesPerSec, p.etaSec),
  });
  bar.done();
  console.log(
    `${entry.name}  ${entry.identity}  (${entry.format}, ${entry.files.length} files, verified)`,
  );
  return 0;
}

export async function importCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...libraryFlag,
      name: { type: 'string' },
      copy: { type: 'boolean', default: false },
      licence: { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 1)
    throw new UsageError('commons model import takes one folder or .gguf file');
  const entry = await importModel(library(values), positionals[0]!, {
    ...(values.name ? { name: values.name } : {}),
    ...(values.licence ? { licence: values.licence } : {}),
    copy: values.copy,
  });
  console.log(
    `${entry.name}  ${entry.identity}  (${entry.format}, at ${entry.location}, licence ${entry.licence ?? 'unknown'})`,
  );
  return 0;
}

export async function list(args: string[]): Promise<number> {
  const { values } = parse(args, { ...libraryFlag, json: { type: 'boolean', default: false } });
  const lib = library(values);
  const entries = await lib.list();
  if (values.json) {
    console.log(JSON.stringify(entries, null, 2));
    return 0;
  }
  if (entries.length === 0) {
    console.log(
      `no models in ${lib.root} (commons model pull org/name, or commons model import PATH)`,
    );
    return 0;
  }
  for (const e of entries) {
    const size = e.files.reduce((n, f) => n + f.size, 0);
    const from =
      e.source.kind === 'hub'
        ? e.source.repo
        : e.source.kind === 'import'
          ? e.source.path
          : e.source.from;
    console.log(
      `${e.name.padEnd(32)} ${e.format.padEnd(4)} ${gb(size).padStart(8)}  ${e.identity.slice(0, 12)}  ${from}`,
    );
  }
  return 0;
}

export async function remove(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, libraryFlag, true);
  if (positionals.length !== 1) throw new UsageError('commons model rm takes one library name');
  const entry = await library(values).remove(positionals[0]!);
  const kept = entry.location !== library(values).folder(entry.name);
  console.log(
    `removed ${entry.name}${kept ? ` (its files at ${entry.location} were left where they are)` : ''}`,
  );
  return 0;
}

/**
 * `commons model propose NAME --rpc URL --key KEYFILE`: a Governor proposal to record a library
 * model as the community's base model (identity, format, licence, public name), made by the
 * key's account. The files are re-hashed first, so what is proposed is what this machine holds.
 */
export async function propose(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...libraryFlag,
      rpc: { type: 'string' },
      addresses: { type: 'string' },
      key: { type: 'string' },
      licence: { type: 'string' },
      'public-name': { type: 'string' },
      description: { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 1)
    throw new UsageError('commons model propose takes one library name');
  if (!values.rpc) throw new UsageError('commons model propose needs --rpc URL (the chain)');
  if (!values.key) throw new UsageError('commons model propose needs --key KEYFILE (the proposer)');
  const lib = library(values);
  let entry = await lib.verify(positionals[0]!);
  const licence = values.licence ?? entry.licence;
  if (!licence) {
    throw new UsageError(
      `the licence of ${entry.name} is not known: state it with --licence (e.g. apache-2.0, llama3.2)`,
    );
  }
  if (licence !== entry.licence) entry = await lib.setLicence(entry.name, licence);
  const described = baseModelDescription(entry);
  const model = { ...described, licence, name: values['public-name'] ?? described.name };
  const signer = await loadSigner(values.key);
  const chain = await CommonsClient.connect({
    rpcUrl: values.rpc,
    ...(values.addresses ? { addresses: values.addresses } : {}),
    privateKey: signer.privateKey,
  });
  try {
    const id = await chain.proposeBaseModel(model, values.description);
    console.log(
      `proposal ${id}: record ${model.name} as the community's base model (${hashToBytes32(model.identity)}, ${model.format}, licence ${licence})`,
    );
  } finally {
    chain.destroy();
  }
  return 0;
}

export async function verifyModel(ref: string, args: string[]): Promise<number> {
  const { values } = parse(args, { ...libraryFlag, expect: { type: 'string' } });
  const entry = await library(values).verify(ref, values.expect);
  console.log(
    `${entry.identity}  ${entry.name} (${entry.format}, ${entry.files.length} files, verified)`,
  );
  return 0;
}

export async function infoModel(ref: string, args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...libraryFlag,
    context: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  const resolved = await resolveModel(ref, library(values));
  const config = await readConfig(resolved);
  const context = Math.min(
    config.maxPositions,
    numberFlag('context', values.context, DEFAULT_CONTEXT, (n) => Number.isInteger(n) && n > 0),
  );
  const { f32, estimate } = chooseWeights(config, context, await availableMemory());
  if (values.json) {
    console.log(JSON.stringify({ ref: resolved, config, estimate }, null, 2));
    return 0;
  }
  const c = config;
  console.log(
    [
      `model        ${resolved.entry?.name ?? resolved.path} (${resolved.format === 'gguf' ? 'GGUF' : 'Hugging Face folder'})`,
      ...(resolved.entry
        ? [
            `identity     ${resolved.entry.identity}`,
            `licence      ${resolved.entry.licence ?? 'unknown'}`,
          ]
        : []),
      `family       ${c.family}: ${c.numLayers} layers, ${c.numHeads} heads (${c.numKvHeads} key/value), width ${c.hiddenSize}, MLP ${c.intermediateSize}`,
      `vocabulary   ${c.vocabSize.toLocaleString('en-US')} tokens; context ${c.maxPositions.toLocaleString('en-US')} (chat keeps ${context})`,
      `parameters   ${estimate.parameters.toLocaleString('en-US')}`,
      `memory       about ${gb(f32.totalBytes)} (${gb(f32.weightBytes)} weights as float32, ${gb(f32.kvCacheBytes)} cache); ${gb(f32.availableBytes)} available: ${f32.fits ? 'fits' : 'does NOT fit'}`,
      ...(f32.fits
        ? []
        : [
            `int8         about ${gb(estimate.totalBytes)} (${gb(estimate.weightBytes)} weights as int8 with a float32 scale per row): ${estimate.fits ? 'fits, so chat holds the weights as int8 (slower, a little less exact)' : 'does NOT fit either'}`,
          ]),
    ].join('\n'),
  );
  return 0;
}

/** Bits per character and nats per token of a model on a text file. */
export async function evalModel(ref: string, args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...libraryFlag,
    data: { type: 'string' },
    json: { type: 'boolean', default: false },
    context: { type: 'string' },
  });
  if (!values.data) throw new UsageError('commons model eval needs --data FILE');
  const text = await readFile(values.data, 'utf8');
  const window = numberFlag('context', values.context, 256, (n) => Number.isInteger(n) && n > 1);
  const { backend } = await selectBackend();
  const model = await openChatModel(await resolveModel(ref, library(values)), { context: window });
  if (model.notice !== null) process.stderr.write(`${model.notice}\n`);
  try {
    const ids = model.tokenizer.encode(text);
    if (ids.length < 2) throw new UsageError(`${values.data} is too short to evaluate`);
    // Consecutive windows, each predicting its own tokens after the first (no overlap:
    // simple and the same for every model; a stride would lower the numbers a little).
    let nats = 0;
    let predicted = 0;
    const span = Math.min(window, model.config.maxPositions);
    for (let start = 0; start + 1 < ids.length; start += span) {
      const chunk = ids.slice(start, start + span);
      if (chunk.length < 2) break;
      const cache = model.decoder.newCache();
      const logits = model.decoder.forward(chunk, cache);
      cache.dispose();
      const targets = tf.tensor1d(chunk.slice(1), 'int32');
      const loss = tf.tidy(() => {
        const logp = tf.logSoftmax(tf.slice(logits, [0, 0], [chunk.length - 1, -1]));
        const picked = tf.sum(tf.mul(logp, tf.oneHot(targets, model.config.vocabSize)));
        return tf.neg(picked);
      });
      nats += (await loss.data())[0]!;
      predicted += chunk.length - 1;
      loss.dispose();
      targets.dispose();
      logits.dispose();
    }
    const chars = [...model.tokenizer.decode(ids, false)].length;
    const result = {
      natsPerToken: nats / predicted,
      bitsPerChar: nats / Math.LN2 / chars,
      tokens: predicted,
      chars,
      backend,
    };
    console.log(
      values.json
        ? JSON.stringify(result)
        : `bits/char ${result.bitsPerChar.toFixed(4)}   ${result.natsPerToken.toFixed(4)} nats/token   ${predicted} tokens on ${backend}`,
    );
  } finally {
    model.decoder.dispose();
  }
  return 0;
}

/** `commons model export REF --gguf [--type f16|q8_0] [--out FILE]`. */
export async function exportModel(ref: string, args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...libraryFlag,
    gguf: { type: 'boolean', default: false },
    type: { type: 'string', default: 'f16' },
    out: { type: 'string' },
  });
  if (!values.gguf) throw new UsageError('commons model export writes GGUF: add --gguf');
  const type = values.type as GgufExportType;
  if (!['f32', 'f16', 'q8_0'].includes(type)) {
    throw new UsageError(`--type ${values.type} is not one of f32, f16, q8_0`);
  }
  const resolved = await resolveModel(ref, library(values));
  const name = resolved.entry?.name ?? path.basename(resolved.path).replace(/\.gguf$/i, '');
  const out = values.out ?? `${name}-${type}.gguf`;
  const source = await openTensors(resolved);
  try {
    const { bytes } = await exportGguf({
      out,
      name,
      config: source.config,
      tokenizer: source.tokenizer,
      bosTokenId: source.bosTokenId,
      eosTokenId: source.eosTokenIds[0] ?? null,
      type,
      read: source.read,
    });
    const params = [...decoderTensorShapes(source.config).values()].reduce(
      (n, s) => n + s.reduce((a, b) => a * b, 1),
      0,
    );
    console.log(
      `${out}  ${gb(bytes)}  (${type}, ${params.toLocaleString('en-US')} parameters; runs in llama.cpp, Ollama, LM Studio)`,
    );
  } finally {
    await source.close();
  }
  return 0;
}

async function openTensors(ref: ModelRef): Promise<{
  config: DecoderConfig;
  tokenizer: HfTokenizerFiles;
  bosTokenId: number | null;
  eosTokenIds: number[];
  read: (name: string) => Promise<HostTensor>;
  close: () => Promise<void>;
}> {
  if (ref.format === 'gguf') return openGgufTensors(ref.path);
  const folder = await openHfFolder(ref.path);
  const readJson = async (file: string) =>
    JSON.parse(await readFile(path.join(ref.path, file), 'utf8')) as Record<string, unknown>;
  try {
    const tokenizer = {
      tokenizerJson: await readJson('tokenizer.json'),
      tokenizerConfig: await readJson('tokenizer_config.json'),
    };
    // Checks the files parse as a tokenizer before anything is written.
    new ChatTokenizer(tokenizer.tokenizerJson, tokenizer.tokenizerConfig);
    return {
      config: parseDecoderConfig(folder.config, path.join(ref.path, 'config.json')),
      tokenizer,
      bosTokenId: folder.bosTokenId,
      eosTokenIds: folder.eosTokenIds,
      read: (name) => folder.read(name),
      close: () => folder.close(),
    };
  } catch (error) {
    await folder.close();
    throw error;
  }
}

/** A one-line byte progress bar with rate and ETA; plain lines when not a terminal. */
function byteProgress(stream: NodeJS.WriteStream) {
  const tty = stream.isTTY === true;
  let lastPlain = 0;
  let lastFile = '';
  return {
    update(file: string, bytes: number, total: number, rate: number, eta: number) {
      const width = 24;
      const filled = total > 0 ? Math.round((bytes / total) * width) : 0;
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${gb(bytes)} / ${gb(total)}  ${gb(rate)}/s  ETA ${clock(eta)}  ${file}`;
      if (tty) stream.write(`\r${line}\x1b[K`);
      else if (file !== lastFile || bytes === total || Date.now() - lastPlain > 5000) {
        lastPlain = Date.now();
        lastFile = file;
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (tty) stream.write('\n');
    },
  };
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
