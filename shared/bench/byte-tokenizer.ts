import type { HfTokenizerFiles } from '../src/formats/gguf-tokenizer.ts';

/**
 * The tokenizer the bench's random models carry into GGUF: byte-level BPE (GPT-2's
 * pre-tokenizer) with the 256 byte symbols as ids 0–255 and no merges. llama.cpp needs a
 * vocabulary to load a model, the bench feeds token ids straight to every engine, and the
 * real vocabularies (49,152 for SmolLM2, 151,936 for Qwen2.5) cannot be downloaded here; the
 * GGUF writer pads the list to the model's embedding rows.
 */
export function byteLevelTokenizer(): HfTokenizerFiles {
  const vocab: Record<string, number> = {};
  byteSymbols().forEach((symbol, byte) => (vocab[symbol] = byte));
  const byteLevel = {
    type: 'ByteLevel',
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  };
  return {
    tokenizerJson: {
      model: { type: 'BPE', vocab, merges: [] },
      added_tokens: [],
      pre_tokenizer: byteLevel,
    },
    tokenizerConfig: { add_bos_token: false },
  };
}

/** GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest from U+0100 on. */
function byteSymbols(): string[] {
  const symbols: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    symbols.push(String.fromCodePoint(printable ? b : next++));
  }
  return symbols;
}
