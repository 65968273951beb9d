import { z } from 'zod';

import { loraConfigSchema, modelConfigSchema } from '../model/config.ts';
import { BYTES_PER_ELEMENT } from './dtype.ts';
import { CheckpointError } from './errors.ts';
import { elementCount, formatShape } from './tensors.ts';

/**
 * manifest.json: what a checkpoint holds and how weights.bin is laid out.
 *
 * Layout rules (checked on every load): tensors are listed in file order; each offset is a
 * multiple of WEIGHTS_ALIGNMENT (so a reader can view the bytes as Float32Array without a
 * copy); tensors do not overlap; byteLength = product(shape) * bytes per element; the last
 * tensor ends exactly at weightsByteLength, which is the size of weights.bin. Gaps (the
 * alignment padding) are zero bytes when Commons writes them; they are covered by the hash.
 */
export const CHECKPOINT_FORMAT = 'commons-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;
export const WEIGHTS_ALIGNMENT = 8;

const sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');

/** Any JSON object; its inner structure belongs to whoever reads it (e.g. the tokenizer). */
const jsonObjectSchema = z.record(z.string(), z.unknown());

export const tensorEntrySchema = z.strictObject({
  name: z.string().min(1),
  dtype: z.enum(['float32', 'float16']),
  shape: z.array(z.number().int().nonnegative()),
  offset: z.number().int().nonnegative(),
  byteLength: z.number().int().nonnegative(),
});
export type TensorEntry = z.infer<typeof tensorEntrySchema>;

/** What a LoRA adapter-only checkpoint needs to be applied: which model, which adapter shape. */
export const adapterInfoSchema = z.strictObject({
  /** Hash of the full model checkpoint the adapter was trained on. */
  baseHash: sha256HexSchema,
  lora: loraConfigSchema.strict(),
});
export type AdapterInfo = z.infer<typeof adapterInfoSchema>;

export type CheckpointKind = 'model' | 'adapter';

export const manifestSchema = z
  .strictObject({
    format: z.literal(CHECKPOINT_FORMAT),
    formatVersion: z.literal(CHECKPOINT_FORMAT_VERSION),
    kind: z.enum(['model', 'adapter']),
    /** sha256 of the identity part and the weights; see hash.ts for the exact definition. */
    hash: sha256HexSchema,
    config: modelConfigSchema.strict(),
    tokenizer: jsonObjectSchema,
    /** Present exactly when kind is 'adapter'. */
    adapter: adapterInfoSchema.optional(),
    tensors: z.array(tensorEntrySchema),
    weightsByteLength: z.number().int().nonnegative(),
    /** How it was made (steps, seed, data, metrics, createdAt, parent...). Not hashed. */
    provenance: jsonObjectSchema,
  })
  .refine((m) => (m.kind === 'adapter') === (m.adapter !== undefined), {
    message: "adapter info is required when kind is 'adapter' and forbidden otherwise",
    path: ['adapter'],
  });
export type Manifest = z.infer<typeof manifestSchema>;

export function alignUp(offset: number): number {
  return Math.ceil(offset / WEIGHTS_ALIGNMENT) * WEIGHTS_ALIGNMENT;
}

/**
 * A validated manifest from JSON text, UTF-8 bytes or an already parsed value. Throws
 * MALFORMED_MANIFEST, UNSUPPORTED_FORMAT, SHAPE_MISMATCH or BAD_LAYOUT; says nothing about
 * weights.bin itself (decodeCheckpoint checks that against the manifest).
 */
export function parseManifest(input: unknown): Manifest {
  const raw = toValue(input);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CheckpointError('MALFORMED_MANIFEST', 'manifest must be a JSON object');
  }
  // Format and version come first: a future version may break today's schema in any way,
  // and "unsupported version" is the useful thing to say about it.
  const { format, formatVersion } = raw as { format?: unknown; formatVersion?: unknown };
  if (format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(
      'UNSUPPORTED_FORMAT',
      `not a Commons checkpoint: format is ${JSON.stringify(format)}, expected "${CHECKPOINT_FORMAT}"`,
    );
  }
  if (formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(
      'UNSUPPORTED_FORMAT',
      `formatVersion ${JSON.stringify(formatVersion)} is not supported (this code reads ${CHECKPOINT_FORMAT_VERSION})`,
    );
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${formatPath(issue.path)}: ${issue.message}`,
    );
    throw new CheckpointError(
      'MALFORMED_MANIFEST',
      `manifest breaks the schema: ${problems.join('; ')}`,
    );
  }
  checkTensorIndex(parsed.data);
  return parsed.data;
}

function toValue(input: unknown): unknown {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else if (input instanceof Uint8Array) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch (cause) {
      throw new CheckpointError('MALFORMED_MANIFEST', 'manifest is not valid UTF-8', { cause });
    }
  } else {
    return input;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new CheckpointError('MALFORMED_MANIFEST', `manifest is not valid JSON: ${reason}`, {
      cause,
    });
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`))
    .join('');
}

/** Names unique, sizes consistent with shapes, offsets aligned, ordered and in bounds. */
function checkTensorIndex(manifest: Manifest): void {
  const seen = new Set<string>();
  let end = 0;
  let previous: string | undefined;
  for (const entry of manifest.tensors) {
    if (seen.has(entry.name)) {
      throw new CheckpointError('MALFORMED_MANIFEST', `tensor "${entry.name}" is listed twice`);
    }
    seen.add(entry.name);

    const count = elementCount(entry.shape);
    const expectedBytes = count * BYTES_PER_ELEMENT[entry.dtype];
    if (!Number.isSafeInteger(count) || expectedBytes !== entry.byteLength) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${entry.name}" has shape ${formatShape(entry.shape)} (${count} ${entry.dtype} = ${expectedBytes} bytes) but byteLength ${entry.byteLength}`,
      );
    }
    if (entry.offset % WEIGHTS_ALIGNMENT !== 0) {
      throw new CheckpointError(
        'BAD_LAYOUT',
        `tensor "${entry.name}" offset ${entry.offset} is not a multiple of ${WEIGHTS_ALIGNMENT}`,
      );
    }
    if (entry.offset < end) {
      throw new CheckpointError(
        'BAD_LAYOUT',
        `tensor "${entry.name}" at offset ${entry.offset} overlaps "${previous}", which ends at ${end}`,
      );
    }
    end = entry.offset + entry.byteLength;
    if (end > manifest.weightsByteLength) {
      throw new CheckpointError(
        'BAD_LAYOUT',
        `tensor "${entry.name}" ends at byte ${end}, past weightsByteLength ${manifest.weightsByteLength}`,
      );
    }
    previous = entry.name;
  }
  if (end !== manifest.weightsByteLength) {
    throw new CheckpointError(
      'BAD_LAYOUT',
      `the last tensor ends at byte ${end} but weightsByteLength is ${manifest.weightsByteLength}`,
    );
  }
}
