import { parentPort } from 'node:worker_threads';
import { CONTROL, KERNEL_EXPORTS, SPIN_BEFORE_SLEEP, type HelperInit } from './kernel-threads.ts';

/**
 * The second core's half of each weight product (kernel-threads.ts): the same
 * kernel module on the same shared memory, driven through a control block of Int32 words.
 * It spins for a while after each job (a decoded token asks for ~200 products, tens to
 * hundreds of microseconds apart, and waking a sleeping thread costs tens), then sleeps on
 * the futex.
 */
if (!parentPort) throw new Error('kernel-worker.ts must run in a worker thread');
parentPort.once('message', ({ module, memory, control }: HelperInit) => {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const kernels = KERNEL_EXPORTS.map(
    (name) => instance.exports[name] as ((...args: number[]) => void) | undefined,
  );
  const ctrl = new Int32Array(control);
  let seen = 0;
  for (;;) {
    let spins = 0;
    while (Atomics.load(ctrl, CONTROL.SEQ) === seen) {
      if (++spins > SPIN_BEFORE_SLEEP) {
        Atomics.wait(ctrl, CONTROL.SEQ, seen);
        spins = 0;
      }
    }
    if (Atomics.load(ctrl, CONTROL.STOP) !== 0) return;
    seen = Atomics.load(ctrl, CONTROL.SEQ);
    const a = CONTROL.ARGS + 1;
    kernels[ctrl[CONTROL.ARGS]!]!(
      ctrl[a]!,
      ctrl[a + 1]!,
      ctrl[a + 2]!,
      ctrl[a + 3]!,
      ctrl[a + 4]!,
      ctrl[a + 5]!,
      ctrl[a + 6]!,
      ctrl[a + 7]!,
      ctrl[a + 8]!,
      ctrl[a + 9]!,
      ctrl[a + 10]!,
    );
    Atomics.store(ctrl, CONTROL.DONE, seen);
    Atomics.notify(ctrl, CONTROL.DONE);
  }
});
