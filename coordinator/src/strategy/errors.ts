/**
 * Why a strategy refused a call (an aggregator's refusals are AggregationErrors, in
 * aggregation/aggregator.ts). Callers branch on `code`; the message is for people and names
 * the value at fault.
 */
export type StrategyErrorCode =
  /** createStrategy was given a name no strategy has (the message lists the known ones). */
  | 'UNKNOWN_STRATEGY'
  /** A hyper-parameter is outside its range (η ≤ 0, β ∉ [0, 1), a negative f, …). */
  | 'INVALID_OPTION'
  /** Vectors or saved state that must match the model's size do not. */
  | 'SIZE_MISMATCH'
  /** Saved state belongs to another strategy or is malformed. */
  | 'STATE_MISMATCH';

export class StrategyError extends Error {
  readonly code: StrategyErrorCode;

  constructor(code: StrategyErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'StrategyError';
    this.code = code;
  }
}
