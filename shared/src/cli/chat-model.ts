import { createInterface } from 'node:readline/promises';
import { selectBackend } from '../backend/select.ts';
import { ChatSession } from '../chat/session.ts';
import type { ChatMessage } from '../chat/tokenizer.ts';
import { ModelLibrary } from '../library/library.ts';
import { gb, openChatModel, resolveModel } from '../library/open.ts';
import { numberFlag, parse } from './options.ts';

/**
 * `commons chat --model REF`: a multi-turn chat with an open-weights model (a library
 * name, a Hugging Face folder or a .gguf file), through its own chat template, with an
 * optional system prompt. Replies stream as they are generated; when the conversation
 * outgrows the context the oldest turns are left out and the member is told.
 * Ctrl-C stops a reply; /reset starts over; /exit (or Ctrl-D) leaves.
 */
export async function chatModel(args: string[]): Promise<number> {
  const { values } = parse(args, {
    model: { type: 'string' },
    library: { type: 'string' },
    system: { type: 'string' },
    context: { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    'top-k': { type: 'string' },
    'max-tokens': { type: 'string' },
    seed: { type: 'string' },
  });
  const temperature = numberFlag('temperature', values.temperature, 0.7, (n) => n >= 0);
  const topP = numberFlag('top-p', values['top-p'], 0.9, (n) => n > 0 && n <= 1);
  const topK = numberFlag('top-k', values['top-k'], 40, (n) => Number.isInteger(n) && n >= 0);
  const maxTokens = numberFlag(
    'max-tokens',
    values['max-tokens'],
    512,
    (n) => Number.isInteger(n) && n > 0,
  );
  const context = numberFlag('context', values.context, 4096, (n) => Number.isInteger(n) && n > 16);
  let seed = numberFlag('seed', values.seed, Date.now() % 1e9, Number.isInteger);

  const { backend } = await selectBackend();
  const ref = await resolveModel(values.model!, new ModelLibrary(values.library));
  const model = await openChatModel(ref, { context });
  const err = (s: string) => process.stderr.write(s);
  err(
    `${ref.entry?.name ?? ref.path}: ${model.config.family}, ${model.estimate.parameters.toLocaleString('en-US')} parameters, ` +
      `context ${model.config.maxPositions}, about ${gb(model.estimate.totalBytes)} of memory, on ${backend}\n`,
  );
  if (model.notice !== null) err(`${model.notice}\n`);
  const tty = process.stdin.isTTY === true;
  if (tty)
    err('type a message and press enter; Ctrl-C stops a reply; /reset starts over; /exit leaves\n');

  const session = new ChatSession(model.decoder, model.tokenizer, model.eosTokenIds);
  const system: ChatMessage[] = values.system ? [{ role: 'system', content: values.system }] : [];
  let history: ChatMessage[] = [...system];
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty });
  let current: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (current) current.abort();
    else rl.close();
  });
  const prompt = () => tty && rl.prompt();
  rl.setPrompt('you> ');
  prompt();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === '/exit') break;
      if (text === '/reset') {
        history = [...system];
        err('(conversation cleared)\n');
      }
      if (!text || text === '/reset') {
        prompt();
        continue;
      }
      history.push({ role: 'user', content: text });
      current = new AbortController();
      if (tty) process.stdout.write('model> ');
      let reply = '';
      for await (const event of session.reply(history, {
        sampling: { temperature, topK, topP, repetitionPenalty: 1 },
        maxTokens,
        seed: seed++,
        signal: current.signal,
      })) {
        if (event.type === 'context' && event.droppedMessages > 0) {
          err(
            `(the ${event.droppedMessages} oldest messages no longer fit in the ${model.config.maxPositions}-token context and were left out)\n`,
          );
        } else if (event.type === 'text') {
          reply += event.text;
          process.stdout.write(event.text);
        } else if (event.type === 'done' && event.reason === 'context') {
          err('\n(the reply stopped at the end of the context)');
        }
      }
      process.stdout.write('\n');
      history.push({ role: 'assistant', content: reply });
      current = null;
      prompt();
    }
  } finally {
    rl.close();
    session.dispose();
    model.decoder.dispose();
  }
  return 0;
}
