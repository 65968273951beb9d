// Electron IPC channel names, apart from wire.ts so the sandboxed preload bundle stays tiny
// (it may only require 'electron'; everything else it imports is inlined).
export const IPC_CALL_CHANNEL = 'commons:call';
export const IPC_EVENT_CHANNEL = 'commons:event';
