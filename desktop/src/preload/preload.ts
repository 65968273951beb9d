// The renderer's only door to the core: `window.commons = { call, on }`, exposed through
// contextBridge. ipcRenderer itself never reaches the page, and only our two channels are
// used, so a compromised page can do no more than the API already allows.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { IPC_CALL_CHANNEL, IPC_EVENT_CHANNEL } from '../transport/ipc-channels.ts';

contextBridge.exposeInMainWorld('commons', {
  call(method: unknown, arg: unknown): Promise<unknown> {
    if (typeof method !== 'string') return Promise.reject(new TypeError('method must be a string'));
    return ipcRenderer.invoke(IPC_CALL_CHANNEL, method, arg);
  },
  on(event: unknown, listener: unknown): () => void {
    if (typeof event !== 'string' || typeof listener !== 'function') {
      throw new TypeError('on(event: string, listener: function)');
    }
    const wrapped = (_e: IpcRendererEvent, name: unknown, payload: unknown) => {
      if (name === event) (listener as (payload: unknown) => void)(payload);
    };
    ipcRenderer.on(IPC_EVENT_CHANNEL, wrapped);
    return () => {
      ipcRenderer.removeListener(IPC_EVENT_CHANNEL, wrapped);
    };
  },
});
