import * as tf from '@tensorflow/tfjs';
import { parentPort } from 'node:worker_threads';
import { selectBackend } from '../../backend/select.ts';
import { parameterShapes } from '../config.ts';
import { Transformer } from '../transformer.ts';
import { FlatAdamW, clipScale } from './flat-adamw.ts';
import type { FlatLayout } from './layout.ts';
import { flatLayout, unpackTensors } from './layout.ts';
import type { InitRequest, StepRequest, WorkerReply, WorkerRequest } from './protocol.ts';
import { ABORT, ARRIVED } from './protocol.ts';

/**
 * One data-parallel training worker: its own tfjs backend and model copy. Per step it
 * computes the gradient of its rows, writes it to its shared region, waits for the others,
 * then sums every region in rank order, clips and applies AdamW itself — so all workers
 * hold bit-identical weights without any weights crossing threads.
 */
if (!parentPort) throw new Error('parallel/worker.ts must run in a worker thread');
const port = parentPort;

class TrainingWorker {
  private readonly init: InitRequest;
  private readonly layout: FlatLayout;
  private readonly model: Transformer;
  private readonly vars: tf.Variable[];
  private readonly regions: Float32Array[];
  private readonly control: Int32Array;
  private readonly weights: Float32Array;
  private readonly optimizer: FlatAdamW;
  /** The summed gradient of all workers. */
  private readonly total: Float32Array;
  /** Steps this worker has arrived at the barrier for. */
  private arrivals = 0;

  constructor(init: InitRequest) {
    this.init = init;
    this.layout = flatLayout(parameterShapes(init.config));
    const n = this.layout.total;
    this.model = Transformer.fromTensors(init.config, unpackTensors(this.layout, init.weights));
    this.vars = [...this.model.params.values()];
    this.regions = Array.from(
      { length: init.workers },
      (_, r) => new Float32Array(init.grads, r * n * 4, n),
    );
    this.control = new Int32Array(init.control);
    // Worker 0 keeps its state where the main thread can read it; the others privately.
    const state = init.rank === 0 ? init.state : new ArrayBuffer(3 * n * 4);
    this.weights = new Float32Array(state, 0, n);
    this.weights.set(init.weights);
    this.optimizer = new FlatAdamW(this.layout, init.adamw, {
      m: new Float32Array(state, n * 4, n),
      v: new Float32Array(state, 2 * n * 4, n),
    });
    this.total = new Float32Array(n);
  }

  step(req: StepRequest): WorkerReply {
    const region = this.regions[this.init.rank]!;
    region.fill(0);
    let loss = 0;
    try {
      for (const share of req.micro) {
        if (share.B === 0) continue;
        loss += share.weight * this.accumulate(share, region);
      }
    } catch (err) {
      this.abort();
      throw err;
    }
    this.arrive();
    this.sumRegions();
    const { scale, norm } = clipScale(this.total, this.init.gradClip);
    this.optimizer.apply(this.weights, this.total, req.lr, scale);
    this.upload();
    return { type: 'stepped', loss, gradNorm: norm };
  }

  /** Adds weight · ∇(mean loss of the share) to `region`; returns that mean loss. */
  private accumulate(share: StepRequest['micro'][number], region: Float32Array): number {
    const { value, grads } = tf.variableGrads(
      () =>
        this.model.loss({ ids: share.ids, B: share.B, T: share.T }, share.targets, {
          training: true,
          dropoutSeed: share.dropoutSeed,
        }),
      this.vars,
    );
    const loss = value.dataSync()[0]!;
    value.dispose();
    this.vars.forEach((v, i) => {
      const g = grads[v.name]!;
      const data = g.dataSync();
      const { offset, size } = this.layout.slots[i]!;
      for (let j = 0; j < size; j++) region[offset + j]! += share.weight * data[j]!;
      g.dispose();
    });
    return loss;
  }

  /** Barrier: announce this worker's gradient, then wait for every other worker's. */
  private arrive(): void {
    this.arrivals += 1;
    const c = this.control;
    Atomics.add(c, ARRIVED, 1);
    Atomics.notify(c, ARRIVED);
    const target = this.arrivals * this.init.workers;
    for (;;) {
      if (Atomics.load(c, ABORT) !== 0) throw new PeerFailure();
      const seen = Atomics.load(c, ARRIVED);
      if (seen >= target) return;
      // The timeout only bounds how late an abort is noticed if a notify were missed.
      Atomics.wait(c, ARRIVED, seen, 1000);
    }
  }

  private abort(): void {
    Atomics.store(this.control, ABORT, 1);
    Atomics.notify(this.control, ARRIVED);
  }

  /** total = region 0 + region 1 + … in rank order: the same float sums on every worker. */
  private sumRegions(): void {
    const [first, ...rest] = this.regions;
    this.total.set(first!);
    for (const r of rest) for (let i = 0; i < r.length; i++) this.total[i]! += r[i]!;
  }

  /** Copy the flat weights into the model's variables. */
  private upload(): void {
    this.vars.forEach((v, i) => {
      const { offset, size, shape } = this.layout.slots[i]!;
      const t = tf.tensor(this.weights.subarray(offset, offset + size), shape);
      v.assign(t);
      t.dispose();
    });
  }

  weightsCopy(): Float32Array {
    return this.weights.slice();
  }

  setState(weights: Float32Array, m: Float32Array, v: Float32Array, step: number): void {
    this.weights.set(weights);
    this.optimizer.m.set(m);
    this.optimizer.v.set(v);
    this.optimizer.step = step;
    this.upload();
  }
}

class PeerFailure extends Error {
  constructor() {
    super('stopped because another training worker failed');
  }
}

let worker: TrainingWorker | null = null;
// Requests run one after another, in arrival order, even while `init` is still awaiting.
let queue: Promise<void> = Promise.resolve();

port.on('message', (req: WorkerRequest) => {
  queue = queue.then(async () => port.postMessage(await handle(req)));
});

async function handle(req: WorkerRequest): Promise<WorkerReply> {
  try {
    switch (req.type) {
      case 'init':
        await selectBackend({ force: req.backend });
        worker = new TrainingWorker(req);
        return { type: 'ready' };
      case 'step':
        return ready().step(req);
      case 'setState':
        ready().setState(req.weights, req.m, req.v, req.optimizerStep);
        return { type: 'stateSet' };
      case 'getWeights':
        return { type: 'weights', weights: ready().weightsCopy() };
    }
  } catch (err) {
    const peer = err instanceof PeerFailure;
    return { type: 'error', message: err instanceof Error ? err.message : String(err), peer };
  }
}

function ready(): TrainingWorker {
  if (!worker) throw new Error('training worker used before init');
  return worker;
}
