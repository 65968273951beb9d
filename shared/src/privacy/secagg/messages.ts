// Every SecAgg+ message, as a zod schema next to its type. The stages follow Flower's
// SecAggPlusWorkflow: setup → share-keys → collect-masked-input → unmask, with the key
// advertisement as the answer to setup. Binary fields are Uint8Array (a Node Buffer is one);
// no message carries floats. Each side parses what it receives with these schemas.
import { z } from 'zod';
import { SHARE_CIPHERTEXT_BYTES } from './share-cipher.ts';
import { SECRET_BYTES } from './shamir.ts';
import { SecAggError } from './errors.ts';

/** Bumped on any incompatible change; every message carries it. */
export const SECAGG_VERSION = 1;

/** Any Uint8Array, whatever its backing buffer (zod's instanceof would narrow to ArrayBuffer). */
function anyBytes(what: string) {
  return z.custom<Uint8Array>((v) => v instanceof Uint8Array, {
    message: `${what} must be bytes (Uint8Array)`,
  });
}

function bytes(length: number, what: string) {
  return anyBytes(what).refine((b) => b.length === length, {
    message: `${what} must be ${length} bytes`,
  });
}

const versionSchema = z.literal(SECAGG_VERSION, { message: `version must be ${SECAGG_VERSION}` });
const roundIdSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const nodeIdSchema = z.number().int().min(1).max(0xffffffff);
const addressSchema = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address (0x + 40 hex)');
const key32 = (what: string) => bytes(32, what);

function distinct<T>(values: readonly T[]): boolean {
  return new Set(values).size === values.length;
}

export const secAggConfigSchema = z.strictObject({
  numShares: z.number().int(),
  reconstructionThreshold: z.number().int(),
  clippingRange: z.number(),
  quantizationRange: z.number().int(),
  modulusRange: z.number().int(),
  maxWeight: z.number(),
  minClients: z.number().int(),
  timeout: z.number().nullable(),
});

/** Server → every sampled client: the parameters, the participants and the round seed. */
export const setupRequestSchema = z.strictObject({
  version: versionSchema,
  stage: z.literal('setup'),
  roundId: roundIdSchema,
  /** Seeds the neighbour graph; each client recomputes its own neighbourhood from it. */
  roundSeed: key32('roundSeed'),
  config: secAggConfigSchema,
  /** Coordinates per update (the ring vectors carry one more: the weight). */
  vectorLength: z
    .number()
    .int()
    .min(1)
    .max(2 ** 28),
  participants: z
    .array(z.strictObject({ nodeId: nodeIdSchema, address: addressSchema }))
    .min(3)
    .refine((ps) => distinct(ps.map((p) => p.nodeId)), 'participant node ids must be distinct')
    .refine(
      (ps) => distinct(ps.map((p) => p.address.toLowerCase())),
      'participant addresses must be distinct',
    ),
});
export type SetupRequest = z.infer<typeof setupRequestSchema>;

const advertisedKeysFields = {
  nodeId: nodeIdSchema,
  /** c_pk: X25519 key for encrypting shares to this node. */
  encryptionKey: key32('encryptionKey'),
  /** s_pk: X25519 key for pairwise masks with this node. */
  maskingKey: key32('maskingKey'),
  /** sha256 commitment to the self-mask seed b (see keys.ts). */
  selfMaskCommitment: key32('selfMaskCommitment'),
  /** EIP-191 signature by the node's address over the above (see keys.ts). */
  signature: bytes(65, 'signature'),
  /**
   * The signing account's uncompressed secp256k1 public key (0x04 ‖ x ‖ y). Not signed: it
   * must hash to the node's address, and it lets a verifier check the signature with one
   * ECDSA verification instead of recovering the key (see keys.ts).
   */
  signerKey: bytes(65, 'signerKey'),
};

/** Client → server, answering setup. */
export const keyAdvertisementSchema = z.strictObject({
  version: versionSchema,
  stage: z.literal('advertise-keys'),
  roundId: roundIdSchema,
  ...advertisedKeysFields,
});
export type KeyAdvertisement = z.infer<typeof keyAdvertisementSchema>;

/** Server → one client: the signed keys of its neighbours that advertised validly. */
export const shareKeysRequestSchema = z.strictObject({
  version: versionSchema,
  stage: z.literal('share-keys'),
  roundId: roundIdSchema,
  nodeId: nodeIdSchema,
  neighbours: z
    .array(z.strictObject(advertisedKeysFields))
    .refine((ns) => distinct(ns.map((n) => n.nodeId)), 'neighbour node ids must be distinct'),
});
export type ShareKeysRequest = z.infer<typeof shareKeysRequestSchema>;

const shareCiphertext = bytes(SHARE_CIPHERTEXT_BYTES, 'ciphertext');

/** Client → server: one encrypted share packet per neighbour, for the server to forward. */
export const shareKeysResponseSchema = z.strictObject({
  version: versionSchema,
  stage: z.literal('share-keys'),
  roundId: roundIdSchema,
  nodeId: nodeIdSchema,
  shares: z
    .array(z.strictObject({ to: nodeIdSchema, ciphertext: shareCiphertext }))
    .refine((ss) => distinct(ss.map((s) => s.to)), 'one packet per receiver'),
});
export type ShareKeysResponse = z.infer<typeof shareKeysResponseSchema>;

/** Server → one client: the packets its neighbours sent it; it masks with exactly these senders. */
export const maskedInputRequestSchema = z.strictObject({
  version: versionSchema,
  stage: z.literal('collect-masked-input'),
  roundId: roundIdSchema,
  nodeId: nodeIdSchema,
  shares: z
    .array(z.strictObject({ from: nodeIdSchema, ciphertext: shareCiphertext }))
    .refine((ss) => distinct(ss.map((s) => s.from)), 'one packet per sender'),
});
export type MaskedInputRequest = z.infer<typeof maskedInputRequestSchema>;

/** Client → server: the masked vector y (little-endian words) and packets it could not open. */
export const maskedInputSchema = z.strictObject({
  version: versionSchema,
  stage: z.literal('collect-masked-input'),
  roundId: roundIdSchema,
  nodeId: nodeIdSchema,
  // Whole, or as the word-aligned segments it arrived in (a transport that received it in
  // chunks hands them over as they are instead of copying them into one fresh buffer).
  vector: z.union([
    anyBytes('vector').refine(
      (b) => b.length > 0 && b.length % 4 === 0,
      'vector must be whole 32-bit words',
    ),
    z
      .array(
        anyBytes('vector segment').refine(
          (b) => b.length % 4 === 0,
          'each vector segment must be whole 32-bit words',
        ),
      )
      .min(1, 'vector must have at least one segment'),
  ]),
  rejectedShares: z.array(z.strictObject({ from: nodeIdSchema, reason: z.string().max(500) })),
});
export type MaskedInput = z.infer<typeof maskedInputSchema>;

/** Server → one client: which of its neighbours survived (reveal b shares) and which dropped (reveal s_sk shares). */
export const unmaskRequestSchema = z
  .strictObject({
    version: versionSchema,
    stage: z.literal('unmask'),
    roundId: roundIdSchema,
    nodeId: nodeIdSchema,
    survivors: z.array(nodeIdSchema).refine(distinct, 'survivors must be distinct'),
    dropped: z.array(nodeIdSchema).refine(distinct, 'dropped must be distinct'),
  })
  .refine((r) => !r.survivors.some((id) => r.dropped.includes(id)), {
    message: 'a node cannot be both a survivor and dropped',
  });
export type UnmaskRequest = z.infer<typeof unmaskRequestSchema>;

export const SHARE_KINDS = ['self-mask', 'mask-key'] as const;
export type ShareKind = (typeof SHARE_KINDS)[number];

/** Client → server: its shares of each survivor's b and each dropped node's s_sk. */
export const unmaskResponseSchema = z.strictObject({
  version: versionSchema,
  stage: z.literal('unmask'),
  roundId: roundIdSchema,
  nodeId: nodeIdSchema,
  shares: z
    .array(
      z.strictObject({
        owner: nodeIdSchema,
        kind: z.enum(SHARE_KINDS),
        share: bytes(SECRET_BYTES, 'share'),
      }),
    )
    .refine((ss) => distinct(ss.map((s) => s.owner)), 'one share per owner'),
});
export type UnmaskResponse = z.infer<typeof unmaskResponseSchema>;

/** Parses a received message, turning a schema failure into MALFORMED_MESSAGE naming the field. */
export function parseSecAggMessage<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  what: string,
): z.infer<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(message)';
    throw new SecAggError('MALFORMED_MESSAGE', `${what}: ${where}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
