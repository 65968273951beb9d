// How numbers, sizes, dates, hashes and token amounts read on screen.

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function formatDate(iso: string | number): string {
  const date = typeof iso === 'number' ? new Date(iso * 1000) : new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** 0x1234…abcd: enough to tell versions apart, with the full value in a title. */
export function shortHash(hash: string, keep = 6): string {
  const body = hash.startsWith('0x') ? hash.slice(2) : hash;
  return body.length <= keep * 2 ? hash : `${body.slice(0, keep)}…${body.slice(-4)}`;
}

/** An 18-decimal base-unit amount (decimal string) as tokens, e.g. "1,250.5". */
export function formatTokens(base: string, decimals = 18): string {
  const value = BigInt(base);
  const unit = 10n ** BigInt(decimals);
  const whole = value / unit;
  const fraction = value % unit;
  const wholeText = whole.toLocaleString('en-US');
  if (fraction === 0n) return wholeText;
  const digits = fraction.toString().padStart(decimals, '0').slice(0, 2).replace(/0+$/, '');
  return digits ? `${wholeText}.${digits}` : wholeText;
}

/** A share of a total, for bars: 0..1, safe for empty totals. */
export function share(part: string | number, total: string | number): number {
  const p = Number(part);
  const t = Number(total);
  return t > 0 ? Math.min(1, Math.max(0, p / t)) : 0;
}

export function formatNumber(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return '—';
  // Tiny values (δ = 1e-5) would round to "0" in a fixed-point rendering.
  if (value !== 0 && Math.abs(value) < 1e-3) return value.toExponential(Math.max(0, digits - 2));
  return Number(value.toPrecision(digits)).toLocaleString('en-US', { maximumFractionDigits: 6 });
}

/** An ε as the API gives it: a number, or 'none' when training added no noise (ε = ∞). */
export function formatEpsilon(value: number | 'none', digits = 3): string {
  return value === 'none' ? 'no DP guarantee' : `ε ${formatNumber(value, digits)}`;
}
