// Runs async tasks one after another: read-modify-write sequences on one file (an index, a
// ledger) must not interleave, or the later write would drop the earlier one's change.
export class Serial {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task, task);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
