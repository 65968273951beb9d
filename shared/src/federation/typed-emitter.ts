/**
 * A minimal typed event emitter: one payload per event, checked against an event map. Written
 * here rather than taken from node:events so the federated client runs unchanged in Node, a
 * browser and a worker. A listener that throws is reported to `onListenerError`, never to the
 * emitter's caller: a UI bug must not break a round.
 */
export class TypedEmitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<(payload: never) => void>>();
  readonly #onListenerError: (err: unknown) => void;

  constructor(onListenerError: (err: unknown) => void = (err) => console.error(err)) {
    this.#onListenerError = onListenerError;
  }

  /** Calls `listener` on every `event`; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): void {
    this.#listeners.get(event)?.delete(listener as (payload: never) => void);
  }

  /** The payload of the next `event` that passes `filter`. */
  once<K extends keyof Events>(
    event: K,
    filter: (payload: Events[K]) => boolean = () => true,
  ): Promise<Events[K]> {
    return new Promise((resolve) => {
      const stop = this.on(event, (payload) => {
        if (!filter(payload)) return;
        stop();
        resolve(payload);
      });
    });
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (listener as (payload: Events[K]) => void)(payload);
      } catch (err) {
        this.#onListenerError(err);
      }
    }
  }
}
