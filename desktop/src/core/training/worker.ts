// The personal trainer's thread: trains a LoRA adapter with shared's Trainer so the core's
// thread (IPC, chat, the web bridge) stays responsive. Pausing stops the run between steps
// and keeps the trainer (weights, optimiser moments, RNG); resuming continues the same run.
import { parentPort } from 'node:worker_threads';
import { selectBackend, evaluate, LoraAdapter, Trainer, Transformer } from '@commons/shared/engine';
import { errorMessage } from '@commons/shared/errors';
import { fromWire, toWire, type FromWorker, type StartMessage, type ToWorker } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('training/worker.ts runs as a worker thread');

const post = (message: FromWorker, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer);

let control: AbortController | null = null;
let wanted: 'run' | 'pause' | 'cancel' = 'run';
let wake: (() => void) | null = null;
/** Read through a call: the message handler changes it while run() awaits. */
const want = () => wanted;

port.on('message', (message: ToWorker) => {
  if (message.type === 'start') {
    void run(message).catch((err: unknown) => {
      post({ type: 'error', message: errorMessage(err) });
    });
    return;
  }
  wanted = message.type === 'resume' ? 'run' : message.type;
  if (wanted !== 'run') control?.abort();
  wake?.();
});

async function run(start: StartMessage): Promise<void> {
  const backend = await selectBackend(start.backend ? { force: start.backend } : {});
  const model = Transformer.fromTensors(start.model.config, fromWire(start.model.tensors));
  const adapter = LoraAdapter.create(model.config, start.lora, start.loraSeed);
  model.adapter = adapter;
  const trainer = new Trainer(model, start.train, adapter);
  try {
    const before = evaluate(model, start.valSplit).bitsPerChar;
    post({ type: 'started', backend: backend.backend, heldOutBefore: before });
    for (;;) {
      control = new AbortController();
      const result = await trainer.run(start.trainSplit, {
        signal: control.signal,
        onProgress: (p) =>
          post({
            type: 'progress',
            step: p.step,
            totalSteps: p.totalSteps,
            loss: p.loss,
            tokensPerSec: p.tokensPerSec,
            etaSec: Number.isFinite(p.etaSec) ? p.etaSec : 0,
          }),
      });
      if (!result.cancelled) {
        const after = evaluate(model, start.valSplit).bitsPerChar;
        const wire = toWire(adapter.toTensors());
        post(
          {
            type: 'done',
            steps: result.steps,
            finalLoss: result.finalLoss,
            heldOutAfter: after,
            adapter: wire,
          },
          wire.map(([, , data]) => data.buffer as ArrayBuffer),
        );
        return;
      }
      if (want() === 'cancel') {
        post({ type: 'cancelled', step: trainer.completedSteps });
        return;
      }
      post({ type: 'paused', step: trainer.completedSteps });
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (want() !== 'pause') resolve();
      });
      wake = null;
      if (want() === 'cancel') {
        post({ type: 'cancelled', step: trainer.completedSteps });
        return;
      }
      post({ type: 'resumed', step: trainer.completedSteps });
    }
  } finally {
    trainer.dispose();
    model.dispose();
    adapter.dispose();
  }
}
