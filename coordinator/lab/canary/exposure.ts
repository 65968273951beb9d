// Exposure of planted canaries (Carlini, Liu, Erlingsson, Kos, Song 2019, "The Secret Sharer",
// §4): rank the canary by the model's log-perplexity among other sentences of its template;
//   exposure = log2 |R| − log2 rank,
// so a canary the model has not learnt sits at a uniformly random rank (expected exposure
// ≈ 1/ln 2 ≈ 1.44 bits whatever |R|), and one it has memorised ranks first (exposure log2 |R|).
// Beyond log2 |R| the paper extrapolates from a distribution fitted to the candidates'
// log-perplexities (§4.3, a skew-normal); both are here, plus the null statistics a test of
// "no more exposed than random" needs.
import * as tf from '@tensorflow/tfjs';
import type { ChatTokenizer, Transformer } from '@commons/shared/engine';
import { logErfc } from '@commons/shared/privacy';

/**
 * Log-perplexity of each sentence in bits, −Σ log2 p(token | earlier tokens), each sentence
 * read as a line of its own: after a newline, the context every planted canary has. Sentences
 * of equal token length are evaluated together in batches of `batchSize` rows.
 */
export function logPerplexities(
  model: Transformer,
  tokenizer: ChatTokenizer,
  sentences: readonly string[],
  batchSize = 256,
): Float64Array {
  const out = new Float64Array(sentences.length);
  const byLength = new Map<number, { index: number; ids: number[] }[]>();
  for (const [index, sentence] of sentences.entries()) {
    const ids = tokenizer.encode('\n' + sentence);
    if (ids.length < 2) throw new Error(`"${sentence}" has no token to predict`);
    if (ids.length > model.config.blockSize) {
      throw new Error(`"${sentence}" is longer than the model's context`);
    }
    const group = byLength.get(ids.length) ?? [];
    group.push({ index, ids });
    byLength.set(ids.length, group);
  }
  const V = model.config.vocabSize;
  for (const [length, group] of byLength) {
    const T = length - 1;
    for (let start = 0; start < group.length; start += batchSize) {
      const rows = group.slice(start, start + batchSize);
      const B = rows.length;
      const inputs = new Int32Array(B * T);
      const targets = new Int32Array(B * T);
      rows.forEach(({ ids }, b) => {
        for (let t = 0; t < T; t++) {
          inputs[b * T + t] = ids[t]!;
          targets[b * T + t] = ids[t + 1]!;
        }
      });
      const picked = tf.tidy(() => {
        const logits = model.forward({ ids: inputs, B, T }); // (B·T, V)
        const logp = tf.logSoftmax(logits);
        // log p(target) at every position: (B·T,), summed per sentence on the host.
        return tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(targets, 'int32'), V)), 1);
      });
      const values = picked.dataSync();
      picked.dispose();
      rows.forEach(({ index }, b) => {
        let nats = 0;
        for (let t = 0; t < T; t++) nats -= values[b * T + t]!;
        out[index] = nats / Math.LN2;
      });
    }
  }
  return out;
}

export interface RankExposure {
  /** 1 + candidates at least as likely as the canary (ties count against it). */
  rank: number;
  /** The canary plus its candidates: |R| of the formula. */
  size: number;
  /** log2 size − log2 rank, in bits. */
  exposure: number;
}

/** The canary's exposure by its rank among candidates of the same template. */
export function rankExposure(canary: number, candidates: ArrayLike<number>): RankExposure {
  let rank = 1;
  for (let i = 0; i < candidates.length; i++) if (candidates[i]! <= canary) rank++;
  const size = candidates.length + 1;
  return { rank, size, exposure: Math.log2(size) - Math.log2(rank) };
}

/**
 * Mean and standard deviation of rank exposure when the rank is uniform on 1..size (a model
 * that knows nothing of the canary): log2 size − E[log2 rank], → 1/ln 2 bits (both) as size grows.
 */
export function randomExposure(size: number): { mean: number; sd: number } {
  let s1 = 0;
  let s2 = 0;
  for (let r = 1; r <= size; r++) {
    const e = Math.log2(size) - Math.log2(r);
    s1 += e;
    s2 += e * e;
  }
  const mean = s1 / size;
  return { mean, sd: Math.sqrt(Math.max(0, s2 / size - mean * mean)) };
}

/**
 * One-sided p-value of "these canaries are no more exposed than random" (Fisher's method):
 * under that hypothesis each rank/size is uniform, so ln 2 · exposure = −ln(rank/size) is
 * (stochastically at most) Exp(1) and their sum at most Gamma(k, 1), whose upper tail is
 * e^−x Σ_{j<k} x^j/j!. Discrete ranks make the p-value conservative, never anti-conservative.
 */
export function exposurePValue(exposures: readonly number[]): number {
  const k = exposures.length;
  if (k === 0) throw new RangeError('no exposures');
  const x = Math.LN2 * exposures.reduce((a, b) => a + b, 0);
  if (x <= 0) return 1;
  // Σ_{j<k} exp(j ln x − ln j! − x), in log space so large x does not overflow.
  let logTerm = -x;
  let sum = Math.exp(logTerm);
  for (let j = 1; j < k; j++) {
    logTerm += Math.log(x) - Math.log(j);
    sum += Math.exp(logTerm);
  }
  return Math.min(1, sum);
}

export interface SkewNormal {
  location: number;
  scale: number;
  shape: number;
}

/**
 * A skew-normal fitted to samples by the method of moments (Carlini et al. §4.3 fit one to the
 * candidates' log-perplexities). Sample skewness is capped just inside the family's range
 * (|γ| < 0.995), as a sample can exceed what a skew-normal can reach.
 */
export function fitSkewNormal(samples: ArrayLike<number>): SkewNormal {
  const n = samples.length;
  if (n < 3) throw new RangeError('a skew-normal fit needs at least 3 samples');
  let mean = 0;
  for (let i = 0; i < n; i++) mean += samples[i]!;
  mean /= n;
  let m2 = 0;
  let m3 = 0;
  for (let i = 0; i < n; i++) {
    const d = samples[i]! - mean;
    m2 += d * d;
    m3 += d * d * d;
  }
  m2 /= n;
  m3 /= n;
  const sd = Math.sqrt(m2);
  if (!(sd > 0)) throw new RangeError('the samples have no spread');
  const gamma = Math.max(-0.995, Math.min(0.995, m3 / sd ** 3));
  // γ = (4 − π)/2 · b³/(1 − b²)^{3/2} with b = δ√(2/π), solved for b.
  const c = Math.cbrt((2 * Math.abs(gamma)) / (4 - Math.PI));
  const b = Math.sign(gamma) * (c / Math.sqrt(1 + c * c));
  const delta = b / Math.sqrt(2 / Math.PI);
  const scale = sd / Math.sqrt(1 - b * b);
  return {
    location: mean - scale * b,
    scale,
    shape: delta / Math.sqrt(1 - delta * delta),
  };
}

/** ln Φ(x), the standard normal CDF, accurate deep in the lower tail. */
function logNormalCdf(x: number): number {
  return logErfc(-x / Math.SQRT2) - Math.LN2;
}

/**
 * ln P(X ≤ x) for a skew-normal X: ln ∫_{−∞}^{z} 2 φ(t) Φ(αt) dt with z = (x − ξ)/ω, integrated
 * in log space on a grid geometric in the distance below z, since deep in the lower tail the
 * mass crowds against z and the integrand underflows long before its logarithm does.
 */
export function skewNormalLogCdf(x: number, { location, scale, shape }: SkewNormal): number {
  const z = (x - location) / scale;
  const logDensity = (t: number) =>
    Math.log(2) - 0.5 * t * t - 0.5 * Math.log(2 * Math.PI) + logNormalCdf(shape * t);
  // u = z − t from 1e-9 to 60 (beyond which the density is below e^−1800 of its peak).
  const points = 4000;
  const uMin = 1e-9;
  const ratio = Math.pow(60 / uMin, 1 / (points - 1));
  const logs: number[] = [];
  let prevU = 0;
  let prevLog = logDensity(z);
  let u = uMin;
  for (let i = 0; i < points; i++, u *= ratio) {
    const here = logDensity(z - u);
    // Trapezoid on [prevU, u] in log space: ln((e^a + e^b)/2 · (u − prevU)).
    const top = Math.max(prevLog, here);
    logs.push(
      top + Math.log((Math.exp(prevLog - top) + Math.exp(here - top)) / 2) + Math.log(u - prevU),
    );
    prevU = u;
    prevLog = here;
  }
  const top = Math.max(...logs);
  return top + Math.log(logs.reduce((s, l) => s + Math.exp(l - top), 0));
}

/**
 * The extrapolated exposure of §4.3: −log2 P(X ≤ canary) for X the skew-normal fitted to the
 * candidates, i.e. log2 of the whole secret space over the canary's estimated rank in it.
 * Reaches past log2 |R| (the most a rank among |R| can show) at the cost of trusting the fit's tail.
 */
export function extrapolatedExposure(canary: number, candidates: ArrayLike<number>): number {
  return -skewNormalLogCdf(canary, fitSkewNormal(candidates)) / Math.LN2;
}

export interface CanaryMeasurement {
  secret: string;
  /** Log-perplexity of the canary, bits. */
  logPerplexity: number;
  /** Mean log-perplexity of its candidates, bits. */
  candidateMean: number;
  rank: number;
  size: number;
  exposure: number;
  extrapolated: number;
}

export interface ExposureSummary {
  canaries: CanaryMeasurement[];
  /** Mean rank exposure over the canaries, bits. */
  mean: number;
  /** Standard error of that mean from the canaries' spread. */
  standardError: number;
  /** What a model that learnt nothing of the canaries shows: mean and SE of the mean. */
  random: { mean: number; standardError: number };
  /** (mean − random.mean) / random.standardError. */
  zScore: number;
  /** Fisher's one-sided p-value of "no more exposed than random" (exposurePValue). */
  pValue: number;
  meanExtrapolated: number;
}

/** Summarises per-canary measurements against what random ranks would give. */
export function summarise(canaries: CanaryMeasurement[]): ExposureSummary {
  const k = canaries.length;
  if (k === 0) throw new RangeError('no canaries');
  const exposures = canaries.map((c) => c.exposure);
  const mean = exposures.reduce((a, b) => a + b, 0) / k;
  const variance = k > 1 ? exposures.reduce((s, e) => s + (e - mean) ** 2, 0) / (k - 1) : 0;
  // Candidate counts are the same for every canary of a run; the null uses each one's own.
  const nulls = canaries.map((c) => randomExposure(c.size));
  const nullMean = nulls.reduce((s, n) => s + n.mean, 0) / k;
  const nullSe = Math.sqrt(nulls.reduce((s, n) => s + n.sd * n.sd, 0)) / k;
  return {
    canaries,
    mean,
    standardError: Math.sqrt(variance / k),
    random: { mean: nullMean, standardError: nullSe },
    zScore: (mean - nullMean) / nullSe,
    pValue: exposurePValue(exposures),
    meanExtrapolated: canaries.reduce((s, c) => s + c.extrapolated, 0) / k,
  };
}
