/**
 * What every aggregation rule implements, and why one refuses an update. Strategies create
 * aggregators (strategy/), the round engine folds into them; this file imports neither, so
 * the rules in this folder never depend on the strategies that choose them.
 */
export interface Aggregator {
  /**
   * Folds one accepted update in. `frame` is a validated update frame (already checked for
   * shape/finite/norm); weight = numExamples. A frame that does not match the model's layout
   * throws (CheckpointError) and leaves the aggregator as it was.
   */
  add(frame: Uint8Array, numExamples: number): void;
  /** How many updates were folded. */
  readonly count: number;
  /** Bytes of state this aggregator holds now (for the memory claims and metrics). */
  memoryBytes(): number;
  /**
   * The aggregated delta as a flat vector, or null: no viable result (Flower's None: the
   * server keeps the previous model and discards the round).
   */
  result(): Float32Array | null;
}

/**
 * Why an aggregator refused. Callers branch on `code`; the message is for people and names
 * the value at fault.
 */
export type AggregationErrorCode =
  /** An update's weight (its example count) is not a positive finite number. */
  | 'INVALID_WEIGHT'
  /** The model is too large for the aggregator's 32-bit WebAssembly memory. */
  | 'MODEL_TOO_LARGE';

export class AggregationError extends Error {
  readonly code: AggregationErrorCode;

  constructor(code: AggregationErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'AggregationError';
    this.code = code;
  }
}
