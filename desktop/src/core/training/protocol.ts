// Messages between the training service and its worker thread. Tensors travel as transferable
// Float32Arrays (never JSON arrays of floats); the worker knows nothing of the vault or chain.
import type { BackendName, LoraConfig, ModelConfig, TrainConfig } from '@commons/shared/engine';

export type WireTensors = [name: string, shape: number[], data: Float32Array][];

export interface StartMessage {
  type: 'start';
  backend: BackendName | undefined;
  model: { config: ModelConfig; tensors: WireTensors };
  lora: LoraConfig;
  loraSeed: number;
  train: Partial<TrainConfig>;
  trainSplit: { tokens: Int32Array; chars: number };
  valSplit: { tokens: Int32Array; chars: number };
}

export type ControlMessage = { type: 'pause' } | { type: 'resume' } | { type: 'cancel' };
export type ToWorker = StartMessage | ControlMessage;

export type FromWorker =
  | { type: 'started'; backend: string; heldOutBefore: number }
  | {
      type: 'progress';
      step: number;
      totalSteps: number;
      loss: number;
      tokensPerSec: number;
      etaSec: number;
    }
  | { type: 'paused'; step: number }
  | { type: 'resumed'; step: number }
  | { type: 'cancelled'; step: number }
  | { type: 'done'; steps: number; finalLoss: number; heldOutAfter: number; adapter: WireTensors }
  | { type: 'error'; message: string };

export function toWire(tensors: Map<string, { shape: number[]; data: Float32Array }>): WireTensors {
  return [...tensors].map(([name, t]) => [name, t.shape, t.data]);
}

export function fromWire(wire: WireTensors): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map(wire.map(([name, shape, data]) => [name, { shape, data }]));
}
