// Events flow one way, core → renderer. The server side forwards every event the core emits
// to each connected renderer; the renderer side fans one stream out to typed listeners.
import type { EventPayload, Events } from '../api/define.ts';
import type { CommonsBridge } from './wire.ts';

/** How a transport hears the core's events: one listener for all of them. */
export type EventTap = (listener: (event: string, payload: unknown) => void) => () => void;

export interface EventClient<E extends Events> {
  on<K extends keyof E & string>(
    event: K,
    listener: (payload: EventPayload<E, K>) => void,
  ): () => void;
}

/** Typed subscriptions over a bridge. Payloads were produced by the core's own schemas. */
export function createEventClient<E extends Events>(
  bridge: Pick<CommonsBridge, 'on'>,
): EventClient<E> {
  return {
    on(event, listener) {
      return bridge.on(event, (payload) => listener(payload as EventPayload<E, typeof event>));
    },
  };
}
