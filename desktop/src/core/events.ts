// The core's event bus: what the transports subscribe to and forward to the renderer. Typed by
// the API's event map, so a service cannot push a payload the renderer does not expect.
import type { z } from 'zod';
import type { ApiEvents, EventName } from '../api/contract.ts';

export type EventPayloads = { [K in EventName]: z.output<ApiEvents[K]> };
export type EventListener<K extends EventName> = (payload: EventPayloads[K]) => void;
export type AnyEventListener = <K extends EventName>(event: K, payload: EventPayloads[K]) => void;

export class CoreEvents {
  readonly #listeners = new Map<EventName, Set<(payload: never) => void>>();
  readonly #any = new Set<AnyEventListener>();

  /** Calls `listener` on every `event`; returns the function that removes it. */
  on<K extends EventName>(event: K, listener: EventListener<K>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return () => set.delete(listener as (payload: never) => void);
  }

  /** Every event, with its name: what a transport forwards wholesale. */
  onAny(listener: AnyEventListener): () => void {
    this.#any.add(listener);
    return () => this.#any.delete(listener);
  }

  /**
   * Delivers synchronously. A listener that throws is reported on stderr and never reaches the
   * service that emitted: a broken window must not stop a training run.
   */
  emit<K extends EventName>(event: K, payload: EventPayloads[K]): void {
    const call = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        console.error(`a listener of ${event} threw:`, err instanceof Error ? err.message : err);
      }
    };
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      call(() => (listener as EventListener<K>)(payload));
    }
    for (const listener of [...this.#any]) call(() => listener(event, payload));
  }
}
