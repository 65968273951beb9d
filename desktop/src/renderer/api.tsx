// The one way screens reach the core: a typed client over whichever bridge connect() found,
// plus typed event subscriptions, handed down through React context.
import { createContext, useContext, useEffect, useRef, type ReactNode } from 'react';
import type { ApiEvents, ApiMethods } from '../api/contract.ts';
import type { ApiClient, EventPayload } from '../api/define.ts';
import { createApiClient } from '../transport/client.ts';
import { createEventClient, type EventClient } from '../transport/events.ts';
import type { ShellMethods } from '../transport/shell-methods.ts';
import type { CommonsBridge } from '../transport/wire.ts';

export type Api = ApiClient<ApiMethods & ShellMethods>;

interface Services {
  api: Api;
  events: EventClient<ApiEvents>;
  mode: 'electron' | 'web';
}

const ServicesContext = createContext<Services | null>(null);

export function ApiProvider(props: {
  bridge: CommonsBridge;
  mode: 'electron' | 'web';
  children: ReactNode;
}) {
  const services = useRef<Services>(null);
  services.current ??= {
    api: createApiClient<ApiMethods & ShellMethods>((m, a) => props.bridge.call(m, a)),
    events: createEventClient<ApiEvents>(props.bridge),
    mode: props.mode,
  };
  return <ServicesContext value={services.current}>{props.children}</ServicesContext>;
}

function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useApi outside ApiProvider');
  return services;
}

export function useApi(): Api {
  return useServices().api;
}

export function useMode(): 'electron' | 'web' {
  return useServices().mode;
}

/** Calls `listener` for every `event` while the component is mounted. */
export function useEvent<K extends keyof ApiEvents & string>(
  event: K,
  listener: (payload: EventPayload<ApiEvents, K>) => void,
): void {
  const { events } = useServices();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => events.on(event, (payload) => latest.current(payload)), [events, event]);
}
