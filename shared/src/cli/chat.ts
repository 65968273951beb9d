import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { selectBackend } from '../backend/select.ts';
import { loadAdapter, loadModel } from '../model/checkpoint.ts';
import { generate } from '../model/generate.ts';
import { chatModel } from './chat-model.ts';
import { GENESIS_DIR, numberFlag, parse } from './options.ts';

/**
 * A terminal chat: each line you type is continued by the model, streamed token by token.
 * Ctrl-C stops a reply; Ctrl-C at the prompt (or Ctrl-D, or /exit) leaves.
 * Without a terminal (piped input) each line is answered in turn.
 */
export async function chat(args: string[]): Promise<number> {
  // An open-weights model (library name, Hugging Face folder, .gguf) has its own chat.
  const at = args.indexOf('--model');
  const named = at >= 0 ? args[at + 1] : args.find((a) => a.startsWith('--model='))?.slice(8);
  if (named !== undefined && !existsSync(path.join(named, 'manifest.json'))) return chatModel(args);
  const { values } = parse(args, {
    model: { type: 'string', default: GENESIS_DIR },
    adapter: { type: 'string' },
    temperature: { type: 'string' },
    'max-tokens': { type: 'string' },
    seed: { type: 'string' },
  });
  const temperature = numberFlag('temperature', values.temperature, 0.8, (n) => n >= 0);
  const maxTokens = numberFlag(
    'max-tokens',
    values['max-tokens'],
    200,
    (n) => Number.isInteger(n) && n > 0,
  );
  let seed = numberFlag('seed', values.seed, Date.now() % 1e9, Number.isInteger);

  const backend = await selectBackend();
  const loaded = await loadModel(values.model);
  const { model, tokenizer, hash } = loaded;
  const tty = process.stdin.isTTY === true;
  const err = (s: string) => process.stderr.write(s);
  if (values.adapter) {
    // A personal adapter follows the member to a later version of the same shape.
    const { adapter, carriedFrom } = await loadAdapter(values.adapter, loaded, { carry: true });
    model.adapter = adapter;
    if (carriedFrom) {
      err(
        `personal adapter trained on ${carriedFrom.slice(0, 12)}…, layered on ${hash.slice(0, 12)}… (same shape)\n`,
      );
    }
  }
  err(
    `model ${hash.slice(0, 12)} (${model.numParams().toLocaleString('en-US')} parameters) on ${backend.backend}` +
      `${model.adapter ? ', personal adapter on' : ''}\n`,
  );
  if (tty)
    err('type a line and press enter; Ctrl-C stops a reply; /adapter on|off; /exit to leave\n');

  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty });
  let current: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (current) current.abort();
    else rl.close();
  });
  // The async iterator buffers lines, so piped input that arrives while a reply is being
  // generated is answered in turn rather than dropped.
  const prompt = () => tty && rl.prompt();
  rl.setPrompt('you> ');
  prompt();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === '/exit') break;
      if (text === '/adapter on' || text === '/adapter off') {
        if (model.adapter) model.adapter.enabled = text.endsWith('on');
        err(
          model.adapter ? `adapter ${text.slice(9)}\n` : 'no adapter loaded (use --adapter DIR)\n',
        );
      }
      if (!text || text.startsWith('/adapter ')) {
        prompt();
        continue;
      }
      current = new AbortController();
      if (tty) process.stdout.write('model> ');
      process.stdout.write(text);
      for await (const chunk of generate(model, tokenizer, text, {
        temperature,
        maxTokens,
        seed: seed++,
        stop: ['\n\n'],
        signal: current.signal,
      })) {
        process.stdout.write(chunk.text);
      }
      process.stdout.write('\n');
      current = null;
      prompt();
    }
  } finally {
    rl.close();
    model.dispose();
  }
  return 0;
}
