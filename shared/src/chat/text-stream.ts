/**
 * Turns a reply's token ids into text as they arrive, never emitting half a character: a
 * byte-level BPE token may carry only part of a UTF-8 sequence (an emoji is often split
 * across two or three tokens), and decoding it alone gives U+FFFD. Like transformers'
 * TextStreamer, the reply is decoded whole each time and only the settled new suffix is
 * released; a trailing U+FFFD waits for the tokens that complete it.
 */
export class TextStream {
  readonly #decode: (ids: readonly number[]) => string;
  readonly #ids: number[] = [];
  #emitted = 0;

  constructor(decode: (ids: readonly number[]) => string) {
    this.#decode = decode;
  }

  /** The text that `id` completes (often '', while a character is still open). */
  push(id: number): string {
    this.#ids.push(id);
    const text = this.#decode(this.#ids);
    if (text.endsWith('\uFFFD')) return '';
    return this.#take(text);
  }

  /** Whatever is left at the end of the reply, replacement characters included. */
  flush(): string {
    return this.#take(this.#decode(this.#ids));
  }

  #take(text: string): string {
    // Decoders may rewrite earlier text (clean-up of spaces before punctuation): only ever
    // emit past what was already shown.
    const piece = text.length > this.#emitted ? text.slice(this.#emitted) : '';
    this.#emitted = Math.max(this.#emitted, text.length);
    return piece;
  }
}
