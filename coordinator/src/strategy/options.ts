import { StrategyError } from './errors.ts';

/**
 * `value` if it is a finite number in range, else an INVALID_OPTION StrategyError naming the
 * option. `below` is an exclusive upper bound, `above` an exclusive lower one.
 */
export function checkOption(
  name: string,
  value: number,
  range: { min?: number; above?: number; below?: number; integer?: boolean },
): number {
  const ok =
    Number.isFinite(value) &&
    (range.integer !== true || Number.isInteger(value)) &&
    (range.min === undefined || value >= range.min) &&
    (range.above === undefined || value > range.above) &&
    (range.below === undefined || value < range.below);
  if (!ok) {
    const bounds = [
      range.integer === true ? 'an integer' : 'a number',
      range.min !== undefined ? `≥ ${range.min}` : '',
      range.above !== undefined ? `> ${range.above}` : '',
      range.below !== undefined ? `< ${range.below}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    throw new StrategyError('INVALID_OPTION', `${name} must be ${bounds}, got ${value}`);
  }
  return value;
}
