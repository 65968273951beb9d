// Central evaluation (Flower's `evaluate`): every candidate and its parent are scored on the
// same public held-out text — the validation tail of tinyshakespeare, which no client trains on
// by construction of the genesis split — so "not worse than its parent" compares like with like.
import {
  type Manifest,
  type NamedTensors,
  readCorpus,
  splitText,
  evaluate,
  evaluationSplit,
  type Evaluation,
  ChatTokenizer,
  Transformer,
} from '@commons/shared/engine';

export interface EvaluatorOptions {
  /** The held-out text; defaults to the last 10% of tinyshakespeare (the genesis split). */
  text?: string;
  /**
   * Only the first N characters of the held-out text (0: all of it). Scoring 111k characters
   * takes seconds per model on 2 cores; tests and simulations use less.
   */
  maxChars?: number;
  batchSize?: number;
}

export class CandidateEvaluator {
  private readonly text: string;
  private readonly batchSize: number;
  /** Scores of models already evaluated, by checkpoint hash (a parent is scored once). */
  private readonly cache = new Map<string, Evaluation>();

  constructor(options: EvaluatorOptions = {}) {
    const full = options.text ?? splitText(readCorpus()).val;
    this.text = options.maxChars ? full.slice(0, options.maxChars) : full;
    this.batchSize = options.batchSize ?? 16;
    if (this.text.length < 2) throw new Error('the evaluation text is empty');
  }

  get characters(): number {
    return this.text.length;
  }

  evaluate(manifest: Manifest, tensors: NamedTensors, hash?: string): Evaluation {
    if (hash !== undefined) {
      const known = this.cache.get(hash);
      if (known) return known;
    }
    const tokenizer = ChatTokenizer.fromJSON(manifest.tokenizer);
    const model = Transformer.fromTensors(manifest.config, tensors);
    try {
      const result = evaluate(model, evaluationSplit(tokenizer, this.text), this.batchSize);
      if (hash !== undefined) this.cache.set(hash, result);
      return result;
    } finally {
      model.dispose();
    }
  }
}
