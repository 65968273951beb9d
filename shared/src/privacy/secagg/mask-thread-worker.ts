// The mask thread's side (mask-thread.ts): folds each job's masks into its vector with
// OpenSSL's ChaCha20 keystream, on this thread's small heap, and hands the vector back.
import { parentPort } from 'node:worker_threads';
import { addMasksInto } from './prg.ts';
import type { MaskJob, MaskResult } from './mask-thread.ts';

if (!parentPort) throw new Error('mask-thread-worker.ts runs as a worker thread only');
const port = parentPort;

port.on('message', (job: MaskJob) => {
  try {
    addMasksInto(job.acc, job.masks, job.modulusRange, 'openssl');
    port.postMessage({ id: job.id, acc: job.acc } satisfies MaskResult, [
      job.acc.buffer as ArrayBuffer,
    ]);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    port.postMessage({ id: job.id, error: message } satisfies MaskResult);
  }
});
