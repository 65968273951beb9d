// What crosses every transport between the renderer and the core: a call names a method and
// carries one argument; its outcome is either a JSON value or a serialised ApiError; events are
// pushed by name. Outcomes are data rather than thrown errors because neither Electron IPC nor
// contextBridge nor JSON keeps an Error's `code` — only a plain object survives every hop intact.
import { z } from 'zod';
import { apiErrorSchema, type SerializedApiError } from '../api/define.ts';

export type CallOutcome = { ok: true; value?: unknown } | { ok: false; error: SerializedApiError };

export const callOutcomeSchema = z.union([
  z.object({ ok: z.literal(true), value: z.unknown().optional() }),
  z.object({ ok: z.literal(false), error: apiErrorSchema }),
]);

/**
 * The narrow surface the renderer gets, identical in both modes: `window.commons` from the
 * Electron preload, or the WebSocket bridge client in a browser. `on` returns its unsubscribe.
 */
export interface CommonsBridge {
  call(method: string, arg: unknown): Promise<CallOutcome>;
  on(event: string, listener: (payload: unknown) => void): () => void;
}

/** WebSocket frames (JSON text). Requests carry an id so replies can arrive out of order. */
export const wsRequestSchema = z.object({
  id: z.number().int().nonnegative(),
  method: z.string().min(1).max(200),
  arg: z.unknown(),
});
export type WsRequest = z.infer<typeof wsRequestSchema>;

export const wsServerFrameSchema = z.union([
  z.object({ type: z.literal('result'), id: z.number().int(), outcome: callOutcomeSchema }),
  z.object({ type: z.literal('event'), event: z.string(), payload: z.unknown() }),
]);
export type WsServerFrame = z.infer<typeof wsServerFrameSchema>;

/** The WebSocket subprotocol that names this wire format; the token travels as a second one. */
export const WS_PROTOCOL = 'commons.v1';
/** The path the bridge accepts WebSocket upgrades on. */
export const WS_PATH = '/api';
