// Every message of the federation protocol, as a zod schema next to its type. Both ends
// validate at the edge: the coordinator every client message, the client every server message.
// Numbers of floats never travel here: updates are binary frames (see upload.ts).
import { z } from 'zod';
import { REJECT_CODES } from './errors.ts';
import { SECAGG_ERROR_CODES } from '../privacy/secagg/errors.ts';
import { maskedInputSchema } from '../privacy/secagg/messages.ts';
import { adapterInfoSchema } from '../checkpoint/manifest.ts';

/** Bumped on any incompatible change; the challenge carries it and the login must match. */
export const PROTOCOL_VERSION = 1;

/** A sha256 digest as the checkpoint codec writes it: 64 lowercase hex, no 0x. */
export const sha256Schema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'a sha256 digest (64 lowercase hex)');
const signatureSchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{130}$/, 'a 65-byte signature (0x + 130 hex)');
const addressSchema = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address (0x + 40 hex)');
const roundIdSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const epochMsSchema = z.number().int().nonnegative();

export const UPDATE_ENCODINGS = ['fp32', 'fp16', 'int8'] as const;
export const encodingSchema = z.enum(UPDATE_ENCODINGS);

/** The explicit states of a round, in the order a successful round passes through them. */
export const ROUND_STATES = [
  'waiting',
  'configuring',
  'training',
  'aggregating',
  'evaluating',
  'published',
  'failed',
] as const;
export type RoundState = (typeof ROUND_STATES)[number];

export const rejectionSchema = z.strictObject({
  code: z.enum(REJECT_CODES),
  message: z.string().max(1000),
});

/** What an acknowledgement carries: the result, or why it was refused. */
export type Ack<T extends object = object> =
  ({ ok: true } & T) | { ok: false; error: z.infer<typeof rejectionSchema> };

// ---- authentication (EIP-4361 Sign-In with Ethereum) -----------------------------------------

/** Sent by the server on connect: what the client must sign to prove its address. */
export const challengeSchema = z.strictObject({
  protocolVersion: z.number().int().positive(),
  domain: z.string().min(1).max(255),
  uri: z.string().url(),
  chainId: z.number().int().positive(),
  nonce: z.string().regex(/^[A-Za-z0-9]{8,64}$/),
  statement: z.string().max(500),
  issuedAt: z.string(),
  expirationTime: z.string(),
});
export type Challenge = z.infer<typeof challengeSchema>;

export const loginSchema = z.strictObject({
  protocolVersion: z.number().int().positive(),
  /** The full EIP-4361 message text the client signed. */
  message: z.string().min(1).max(4000),
  signature: signatureSchema,
});
export type Login = z.infer<typeof loginSchema>;

export interface LoginResult {
  address: string;
}

// ---- rounds ----------------------------------------------------------------------------------

/** How a client trains for a round: the strategy's configureRound output plus policy. */
export const trainingTaskSchema = z.strictObject({
  localEpochs: z.number().int().min(1).max(100),
  learningRate: z.number().positive().max(10),
  batchSize: z.number().int().min(1).max(4096),
  /** Upper bound on local optimiser steps, whatever the epochs ask for (keeps rounds short). */
  maxSteps: z.number().int().min(1).max(1_000_000),
  /** FedProx proximal term μ; 0 is plain local SGD/AdamW (FedAvg). */
  proxMu: z.number().min(0).max(100),
  seed: z.number().int().nonnegative(),
});
export type TrainingTask = z.infer<typeof trainingTaskSchema>;

/**
 * Secure aggregation for a round (SecAgg+, shared/src/privacy/secagg): the client masks its
 * update and the coordinator learns only the sum. The SecAgg+ parameters themselves arrive in
 * `secagg:setup`, once the participants are known.
 */
export const secureAggregationTaskSchema = z.strictObject({
  /** Coordinates of the flat update vector (every tensor end to end, checkpoint order). */
  vectorLength: z
    .number()
    .int()
    .min(1)
    .max(2 ** 28),
  /** A client's weight is min(examples, maxWeight): the ring carries weights up to this. */
  maxWeight: z.number().positive(),
  /** Largest `secagg:masked-chunk` the server takes. */
  chunkBytes: z.number().int().positive(),
  /**
   * Distributed DP (privacy/dp splitNoiseStddev): each client adds N(0, noiseStddev²) to its
   * clipped update before masking and weighs it maxWeight (DP-FedAvg's equal-weight mean), so
   * the sum of any ≥ minClients survivors carries the policy's noise. 0: no noise.
   */
  noiseStddev: z.number().min(0).finite(),
});
export type SecureAggregationTask = z.infer<typeof secureAggregationTaskSchema>;

/**
 * The LoRA rules a round may train by (FederationPolicy's adapter rules other than full-delta):
 * FFA-LoRA (Sun et al., ICLR 2024) freezes A at what the round's seed draws and trains B only,
 * so the mean of the clients' B is exactly the adapter of the mean; LoRA-FedAvg (FedIT) trains
 * and averages both, which is not (mean(B)·mean(A) ≠ mean(B·A)) but is what FlowerTune does.
 */
export const ADAPTER_ROUND_RULES = ['ffa-lora', 'lora-fedavg'] as const;
export type AdapterRoundRule = (typeof ADAPTER_ROUND_RULES)[number];

/**
 * A round that trains a LoRA adapter on its base model. Every participant draws the same
 * fresh adapter from `seed` (A ~ N(0, 1/in), B = 0; model/lora.ts) and attaches it to the
 * base; the update is the change of the factors it trained (B alone under FFA-LoRA), under
 * PEFT's names. The coordinator folds (α/r)·B·A of the average into the base: that is the
 * round's candidate, and the adapter is published beside it.
 */
export const adapterTaskSchema = z.strictObject({
  rule: z.enum(ADAPTER_ROUND_RULES),
  /** Rank, α and target projections, as an adapter checkpoint records them. */
  lora: adapterInfoSchema.shape.lora,
  seed: z
    .number()
    .int()
    .nonnegative()
    .max(2 ** 32 - 1),
});
export type AdapterTask = z.infer<typeof adapterTaskSchema>;

export const roundTaskSchema = z.strictObject({
  protocolVersion: z.number().int().positive(),
  roundId: roundIdSchema,
  strategy: z.string().min(1).max(64),
  /** The model to train from: its checkpoint hash and where to fetch it (relative to the server). */
  baseModel: z.strictObject({ hash: sha256Schema, path: z.string().startsWith('/') }),
  /** Version of the on-chain federation policy the round obeys. */
  policyVersion: z.number().int().nonnegative(),
  train: trainingTaskSchema,
  /** Every update must have an L2 norm of at most this (clients clip to it). */
  clipNorm: z.number().positive(),
  encoding: encodingSchema,
  upload: z.strictObject({
    /** Exact size of a well-formed update frame for this model and encoding. */
    frameBytes: z.number().int().positive(),
    /** Largest chunk the server takes in one message. */
    chunkBytes: z.number().int().positive(),
  }),
  /** Unix milliseconds after which uploads are refused. */
  deadline: epochMsSchema,
  /**
   * Present when the round runs secure aggregation: no plain upload, the update travels masked
   * through the `secagg:*` stages. Absent (or null) on plain rounds, whose tasks stay as before.
   */
  secureAggregation: secureAggregationTaskSchema.nullable().optional(),
  /** Present when the round trains a LoRA adapter; absent (or null): the whole model's delta. */
  adapter: adapterTaskSchema.nullable().optional(),
});
export type RoundTask = z.infer<typeof roundTaskSchema>;

export const inviteReplySchema = z.strictObject({
  accept: z.boolean(),
  reason: z.string().max(500).optional(),
});
export type InviteReply = z.infer<typeof inviteReplySchema>;

export const roundStatusSchema = z.strictObject({
  roundId: roundIdSchema,
  state: z.enum(ROUND_STATES),
  baseModel: sha256Schema,
  invited: z.number().int().nonnegative(),
  accepted: z.number().int().nonnegative(),
  minClients: z.number().int().nonnegative(),
  deadline: epochMsSchema,
});
export type RoundStatus = z.infer<typeof roundStatusSchema>;

export const roundResultSchema = z.strictObject({
  roundId: roundIdSchema,
  outcome: z.enum(['published', 'failed']),
  /** Why the round failed, or notes on publication. */
  reason: z.string().max(1000).optional(),
  accepted: z.number().int().nonnegative(),
  candidate: z
    .strictObject({
      hash: sha256Schema,
      parentHash: sha256Schema,
      /** Adapter rounds: the hash of the published adapter (the candidate is the parent plus it). */
      adapterHash: sha256Schema.optional(),
      valLoss: z.number(),
      valBpc: z.number(),
      /** Cumulative ε of the published model at `delta`; null: no DP guarantee (no noise). */
      epsilon: z.number().nonnegative().nullable().optional(),
      delta: z.number().optional(),
    })
    .optional(),
});
export type RoundResult = z.infer<typeof roundResultSchema>;

export const progressSchema = z.strictObject({
  roundId: roundIdSchema,
  phase: z.enum(['downloading', 'training', 'uploading']),
  done: z.number().nonnegative(),
  total: z.number().nonnegative(),
});
export type Progress = z.infer<typeof progressSchema>;

/** A participant giving up on a round (it failed to download, train or upload): the server
 * stops waiting for it at once instead of at the deadline. */
export const withdrawalSchema = z.strictObject({
  roundId: roundIdSchema,
  reason: z.string().max(500),
});
export type Withdrawal = z.infer<typeof withdrawalSchema>;

// ---- uploads ---------------------------------------------------------------------------------

/** Opens an upload: what the frame is, and the client's signature binding it to the round. */
export const uploadBeginSchema = z.strictObject({
  roundId: roundIdSchema,
  baseModel: sha256Schema,
  contributor: addressSchema,
  encoding: encodingSchema,
  byteLength: z.number().int().positive(),
  sha256: sha256Schema,
  /** Training examples behind the update (FedAvg's weight). */
  numExamples: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** EIP-712 signature of the UpdateCommitment (see commitment.ts). */
  signature: signatureSchema,
  /**
   * Adaptive clipping's bit: whether the update's norm before clipping was at most the round's
   * clip norm. Not in the signed commitment; the signed-in session vouches for it.
   */
  clipBit: z.boolean().optional(),
});
export type UploadBegin = z.infer<typeof uploadBeginSchema>;

export const uploadIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/);
export const chunkIndexSchema = z.number().int().nonnegative().max(1_000_000);
/** A chunk arrives as a Node Buffer (a Uint8Array) on the server, an ArrayBuffer in browsers. */
export const chunkDataSchema = z.union([z.instanceof(Uint8Array), z.instanceof(ArrayBuffer)]);

export interface UploadAccepted {
  /** The EIP-712 digest of the update commitment: a leaf of the round's commitment tree. */
  commitment: string;
  norm: number;
}

/**
 * How deeply a client message may nest. Every client message is a flat object or a scalar
 * (depth 1 or 2); the bound only stops a hostile one from costing a deep recursion anywhere
 * (a schema, a logger) before it is refused.
 */
export const MAX_MESSAGE_DEPTH = 32;

/**
 * Whether `value` nests objects or arrays more than `limit` levels deep. Iterative, so the check
 * itself cannot overflow the stack, and it stops at the first level past the limit. Bytes
 * (Buffers, typed arrays, ArrayBuffers) are leaves: their elements are never walked.
 */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [node, depth] = item;
    if (node === null || typeof node !== 'object') continue;
    if (ArrayBuffer.isView(node) || node instanceof ArrayBuffer) continue;
    if (depth >= limit) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

/** The first schema issue of a failed parse, as one readable line. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid message';
  const where = issue.path.length > 0 ? issue.path.join('.') : 'message';
  return `${where}: ${issue.message}`;
}

// ---- secure aggregation (SecAgg+ stages over Socket.IO) --------------------------------------
//
// The server asks, the client answers in the acknowledgement: secagg:setup → KeyAdvertisement,
// secagg:share-keys → ShareKeysResponse, secagg:masked-input → MaskedInputHeader (the masked
// vector itself went before it as secagg:masked-chunk messages), secagg:unmask →
// UnmaskResponse. The replies' contents are validated by the SecAgg+ state machines with the
// schemas in privacy/secagg/messages.ts; here only their envelope.

/** Why a client refused a stage (a SecAgg+ check failed) or gave up (WITHDRAWN). */
export const secAggRefusalSchema = z.strictObject({
  code: z.enum([...SECAGG_ERROR_CODES, 'WITHDRAWN']),
  message: z.string().max(1000),
});
export type SecAggRefusal = z.infer<typeof secAggRefusalSchema>;

/** A client's answer to a stage request: its reply, or why there is none. */
export const secAggAnswerSchema = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true), reply: z.unknown() }),
  z.strictObject({ ok: z.literal(false), error: secAggRefusalSchema }),
]);
export type SecAggAnswer<T> = { ok: true; reply: T } | { ok: false; error: SecAggRefusal };

/**
 * The answer to secagg:masked-input: the MaskedInput without its vector (sent in chunks, so no
 * message outgrows maxHttpBufferSize), what the chunks add up to, and the contributor's EIP-712
 * MaskedUpdateCommitment over them (masked-commitment.ts).
 */
export const maskedInputHeaderSchema = maskedInputSchema.omit({ vector: true }).extend({
  byteLength: z.number().int().positive(),
  sha256: sha256Schema,
  signature: signatureSchema,
});
export type MaskedInputHeader = z.infer<typeof maskedInputHeaderSchema>;

/**
 * A SecAgg+ message on the wire: its structure with every byte field replaced by a reference
 * `{ $bytes: [offset, length] }` into one binary attachment. Why: Socket.IO's parser refuses a
 * packet with more than 10 binary attachments (a guard against memory abuse), and a share-keys
 * request carries four byte fields per neighbour — SecAgg+ neighbourhoods reach dozens. One
 * attachment per message, whatever the neighbourhood, and the bytes stay binary.
 */
export interface PackedMessage {
  body: unknown;
  /** A Buffer in Node, an ArrayBuffer in browsers. */
  bytes: Uint8Array | ArrayBuffer;
}

/** Packs `value` (JSON-like, with Uint8Array leaves) into one structure + one byte array. */
export function packBinary(value: unknown): PackedMessage {
  const parts: Uint8Array[] = [];
  let length = 0;
  const walk = (v: unknown): unknown => {
    if (v instanceof Uint8Array) {
      parts.push(v);
      length += v.byteLength;
      return { $bytes: [length - v.byteLength, v.byteLength] };
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(v)) out[key] = walk(item);
      return out;
    }
    return v;
  };
  const body = walk(value);
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.byteLength;
  }
  return { body, bytes };
}

/**
 * Reverses packBinary: every `{ $bytes: [offset, length] }` becomes a view of the attachment
 * (no copy). Throws a ProtocolError-free plain Error naming what is wrong; the caller turns it
 * into its refusal. The result still has to pass the message's schema.
 */
export function unpackBinary(packed: unknown): unknown {
  if (
    packed === null ||
    typeof packed !== 'object' ||
    !('body' in packed) ||
    !('bytes' in packed)
  ) {
    throw new Error('a packed message must be { body, bytes }');
  }
  const raw = (packed as { bytes: unknown }).bytes;
  const bytes =
    raw instanceof ArrayBuffer ? new Uint8Array(raw) : raw instanceof Uint8Array ? raw : null;
  if (!bytes) throw new Error('the packed message has no byte attachment');
  const walk = (v: unknown, depth: number): unknown => {
    if (depth > 16) throw new Error('the packed message is nested too deeply');
    if (Array.isArray(v)) return v.map((item) => walk(item, depth + 1));
    if (v === null || typeof v !== 'object') return v;
    const ref = (v as { $bytes?: unknown }).$bytes;
    if (ref !== undefined) {
      const [offset, length] = Array.isArray(ref) ? (ref as unknown[]) : [];
      if (
        !Number.isInteger(offset) ||
        !Number.isInteger(length) ||
        (offset as number) < 0 ||
        (length as number) < 0 ||
        (offset as number) + (length as number) > bytes.byteLength
      ) {
        throw new Error(`a byte reference [${String(ref)}] lies outside the attachment`);
      }
      return bytes.subarray(offset as number, (offset as number) + (length as number));
    }
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(v)) out[key] = walk(item, depth + 1);
    return out;
  };
  return walk((packed as { body: unknown }).body, 0);
}
