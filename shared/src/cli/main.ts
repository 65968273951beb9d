import { CheckpointError } from '../checkpoint/index.ts';
import { ModelFormatError } from '../formats/errors.ts';
import { chat } from './chat.ts';
import { contribute } from './contribute.ts';
import { doctor } from './doctor.ts';
import { UsageError } from './errors.ts';
import { modelCommand } from './model.ts';
import { train } from './train.ts';

export const USAGE = `usage: commons <command> [options]

  doctor [--json]                          which tfjs backend runs here, and why not a faster one
  chat [--model DIR] [--adapter DIR]       chat with a model in the terminal (streams tokens)
       [--temperature T] [--max-tokens N] [--seed S]
  train --data PATH... [--model DIR]       fine-tune on local .txt/.md files (folders walked)
        [--out DIR] [--steps N] [--lora]   --lora writes a small personal adapter
  contribute --coordinator URL             federated training: train on your notes here,
             --data PATH... --key KEYFILE  upload only a clipped, signed model update
             [--rounds N] [--yes]          (--rpc: join only rounds that train the
             [--rpc URL] [--addresses F]   model active on chain)
  model verify DIR [--expect HASH]         check a checkpoint's hash (exit 1 if tampered)
  model eval DIR --data FILE [--json]      loss and bits per character on a text file
  model info DIR                           what a checkpoint holds

Open-weights models (Llama, Qwen2, SmolLM2: a library name, a Hugging Face folder or a .gguf):
  model pull ORG/NAME [--revision R]       download from the Hugging Face hub into the library
             [--file X.gguf] [--hub-url U] (HF_TOKEN for gated models; resumes, checks sha256)
  model import PATH [--name N] [--copy]    add a folder or .gguf already on disk (LM Studio, Ollama)
               [--licence L]               the licence it is published under, if it does not say
  model list | rm NAME                     the library (~/.commons/models, or COMMONS_MODELS)
  model propose NAME --rpc URL             a Governor proposal: record NAME as the community's
                --key KEYFILE              base model (identity, format, licence); --licence L
                [--addresses F]            where the library does not know it
  model info|verify MODEL                  shape, memory it needs / its identity re-hashed
  model eval MODEL --data FILE [--json]    bitsPerChar and natsPerToken on a text file
  model export MODEL --gguf [--type T]     write GGUF (f32, f16, q8_0) for llama.cpp / Ollama
  chat --model MODEL [--system TEXT]       multi-turn chat through the model's chat template
       [--context N] [--top-p P] [--top-k K]   (every command takes --library DIR)

The default model is the genesis checkpoint shipped in shared/genesis. KEYFILE is a 0x private
key only you can read (chmod 600) or an encrypted JSON keystore (passphrase in
COMMONS_KEY_PASSPHRASE).`;

/** Runs a command line; returns the process exit code. */
export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'doctor':
        return await doctor(rest);
      case 'chat':
        return await chat(rest);
      case 'train':
        return await train(rest);
      case 'contribute':
        return await contribute(rest);
      case 'model':
        return await modelCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}" (try: commons help)`);
    }
  } catch (err) {
    if (process.env.COMMONS_DEBUG) console.error(err);
    console.error(`commons: ${describe(err)}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

function describe(err: unknown): string {
  if (
    err instanceof UsageError ||
    err instanceof CheckpointError ||
    err instanceof ModelFormatError
  ) {
    return err.message;
  }
  // node:util parseArgs errors are usage errors with a code.
  const code = (err as { code?: string }).code;
  if (code?.startsWith('ERR_PARSE_ARGS')) return (err as Error).message;
  if (code === 'ENOENT') return `no such file or folder: ${(err as { path?: string }).path ?? ''}`;
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}
