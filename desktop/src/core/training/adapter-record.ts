// The personal adapter as a vault record. It is kept ENCRYPTED, like the documents it was
// trained on: LoRA factors can memorise phrases of their training text, so a plain file would
// leak what the vault protects. Layout: u32 header length ‖ header JSON (info + checkpoint
// manifest) ‖ weights.bin bytes; the checkpoint hash is verified again on every read.
import {
  decodeCheckpoint,
  encodeCheckpoint,
  type Manifest,
  type LoraConfig,
  type ModelConfig,
} from '@commons/shared/engine';
import type { AdapterInfo } from '../../api/training.ts';

export type StoredAdapterInfo = Omit<AdapterInfo, 'enabled' | 'carriedFrom'>;

export interface AdapterCheckpoint {
  info: StoredAdapterInfo;
  lora: LoraConfig;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

export function adapterRecordId(baseHash: string): string {
  return `adapter-${baseHash.toLowerCase().replace(/^0x/, '')}`;
}

export function encodeAdapterRecord(input: {
  config: ModelConfig;
  tokenizer: unknown;
  lora: LoraConfig;
  baseHash: string;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  info: Omit<StoredAdapterInfo, 'hash' | 'baseHash'>;
}): { bytes: Buffer; info: StoredAdapterInfo } {
  const baseHash = input.baseHash.toLowerCase().replace(/^0x/, '');
  const encoded = encodeCheckpoint({
    kind: 'adapter',
    config: input.config,
    tokenizer: input.tokenizer,
    tensors: input.tensors,
    adapter: { baseHash, lora: input.lora },
    provenance: { ...input.info },
  });
  const info: StoredAdapterInfo = { ...input.info, hash: encoded.hash, baseHash };
  const header = Buffer.from(JSON.stringify({ info, manifest: encoded.manifest }), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length);
  return { bytes: Buffer.concat([length, header, encoded.weights]), info };
}

export function decodeAdapterRecord(bytes: Buffer): AdapterCheckpoint {
  const length = bytes.readUInt32BE(0);
  const { info, manifest } = JSON.parse(bytes.subarray(4, 4 + length).toString('utf8')) as {
    info: StoredAdapterInfo;
    manifest: Manifest;
  };
  const decoded = decodeCheckpoint(manifest, bytes.subarray(4 + length), {
    expectedHash: info.hash,
  });
  if (!decoded.manifest.adapter) throw new Error('the stored adapter record holds no adapter');
  return { info, lora: decoded.manifest.adapter.lora, tensors: decoded.tensors };
}
