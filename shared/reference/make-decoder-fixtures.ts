/**
 * Regenerates decoder_reference.json: builds each tiny model of tiny-decoders.ts as a
 * Hugging Face folder, runs the plain-PyTorch reference on it, and records its logits and
 * greedy continuation. Needs Debian's Python with torch (apt install python3-torch); CI
 * does not run this, it reads the committed JSON.
 *
 *   node shared/reference/make-decoder-fixtures.ts
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { writeHfFolder } from '../src/formats/hf-folder.ts';
import { REFERENCE_NEW_TOKENS, REFERENCE_PROMPT, TINY_DECODERS } from './tiny-decoders.ts';

const here = path.dirname(new URL(import.meta.url).pathname);
const dir = await mkdtemp(path.join(tmpdir(), 'commons-decoder-ref-'));
const fixtures: Record<string, { logits: number[][]; greedy: number[] }> = {};
try {
  for (const tiny of TINY_DECODERS) {
    const folder = path.join(dir, tiny.name);
    const tensors = randomDecoderWeights(parseDecoderConfig(tiny.config), tiny.seed);
    await writeHfFolder(folder, { config: tiny.config, tensors, dtype: tiny.dtype });
    const out = execFileSync(
      '/usr/bin/python3',
      [
        path.join(here, 'llama_reference.py'),
        folder,
        REFERENCE_PROMPT.join(','),
        String(REFERENCE_NEW_TOKENS),
      ],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    fixtures[tiny.name] = JSON.parse(out) as { logits: number[][]; greedy: number[] };
    console.log(`${tiny.name}: greedy ${fixtures[tiny.name]!.greedy.join(' ')}`);
  }
  const round = (_key: string, v: unknown) =>
    typeof v === 'number' ? Number(v.toPrecision(8)) : v;
  await writeFile(
    path.join(here, 'decoder_reference.json'),
    `${JSON.stringify(fixtures, round)}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
