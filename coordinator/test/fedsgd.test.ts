import { type NamedTensors, sampleBatch, Rng, Transformer } from '@commons/shared/engine';
import { afterAll, describe, expect, it } from 'vitest';
import { clientGradient, sgdStep } from '../lab/simulation/fedsgd.ts';

const model = Transformer.create(
  {
    vocabSize: 11,
    blockSize: 4,
    nLayer: 1,
    nHead: 2,
    nEmbd: 8,
    dropout: 0,
    bias: true,
    tiedHead: true,
  },
  3,
);
afterAll(() => model.dispose());

describe('FedSGD (lab/simulation/fedsgd.ts)', () => {
  it("a client's gradient is the loss's: central differences agree along a random direction", () => {
    const tokens = Int32Array.from({ length: 64 }, (_, i) => (i * 7 + (i >> 3)) % 11);
    const gradient = clientGradient(model, tokens, 3, new Rng(5));
    // The same batch clientGradient drew (same seed, same draw).
    const { batch, targets } = sampleBatch(tokens, 3, 4, new Rng(5));
    const base = model.toTensors();
    const direction = new Rng(9);
    const d = new Map([...base].map(([name, t]) => [name, t.data.map(() => direction.normal())]));
    const lossAt = (eps: number): number => {
      const moved: NamedTensors = new Map(
        [...base].map(([name, t]) => [
          name,
          { shape: t.shape, data: t.data.map((v, i) => v + eps * d.get(name)![i]!) },
        ]),
      );
      model.assign(moved);
      const loss = model.loss(batch, targets);
      const value = loss.dataSync()[0]!;
      loss.dispose();
      return value;
    };
    const eps = 1e-3;
    const numeric = (lossAt(eps) - lossAt(-eps)) / (2 * eps);
    model.assign(base);
    let analytic = 0;
    for (const [name, g] of gradient) g.forEach((v, i) => (analytic += v * d.get(name)![i]!));
    expect(Math.abs(analytic)).toBeGreaterThan(1e-3);
    expect(Math.abs(numeric - analytic)).toBeLessThan(0.02 * Math.abs(analytic));
  });

  it('the server steps against the example-weighted mean gradient, leaving the input alone', () => {
    const weights: NamedTensors = new Map([['w', { shape: [2], data: Float32Array.of(1, 2) }]]);
    const g1 = new Map([['w', Float32Array.of(1, 0)]]);
    const g2 = new Map([['w', Float32Array.of(0, 1)]]);
    // Mean gradient (3·g1 + 1·g2) / 4 = (0.75, 0.25); η = 0.5.
    const next = sgdStep(weights, [g1, g2], [3, 1], 0.5);
    expect([...next.get('w')!.data]).toEqual([0.625, 1.875]);
    expect([...weights.get('w')!.data]).toEqual([1, 2]);
  });

  it('refuses example counts that cannot weigh, and gradients of another shape, by name', () => {
    const weights: NamedTensors = new Map([['w', { shape: [2], data: Float32Array.of(1, 2) }]]);
    const g = new Map([['w', Float32Array.of(1, 0)]]);
    expect(() => sgdStep(weights, [g], [0], 1)).toThrow(/example counts must be positive/);
    expect(() => sgdStep(weights, [g], [1, 2], 1)).toThrow(/one example count per gradient/);
    const short = new Map([['w', Float32Array.of(1)]]);
    expect(() => sgdStep(weights, [short], [1], 1)).toThrow(/gradient 0 has no 2 values for "w"/);
  });
});
