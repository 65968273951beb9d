import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import type { SecAggError } from '../src/privacy/secagg/errors.ts';
import {
  keyAdvertisementSchema,
  maskedInputSchema,
  parseSecAggMessage,
  setupRequestSchema,
  unmaskRequestSchema,
  unmaskResponseSchema,
} from '../src/privacy/secagg/messages.ts';
import { SecAggServer } from '../src/privacy/secagg/server.ts';

const addresses = Array.from({ length: 5 }, () => Wallet.createRandom().address);

function malformed(schema: Parameters<typeof parseSecAggMessage>[0], raw: unknown): string {
  try {
    parseSecAggMessage(schema, raw, 'test message');
  } catch (err) {
    expect((err as SecAggError).code).toBe('MALFORMED_MESSAGE');
    return (err as SecAggError).message;
  }
  throw new Error('the message was accepted');
}

describe('SecAgg+ message schemas', () => {
  const server = new SecAggServer({
    roundId: 4,
    participants: addresses,
    vectorLength: 8,
    settings: { numShares: 5 },
  });
  const setup = server.setupRequest();
  const advert = {
    version: 1,
    stage: 'advertise-keys',
    roundId: 4,
    nodeId: 1,
    encryptionKey: new Uint8Array(32),
    maskingKey: new Uint8Array(32),
    selfMaskCommitment: new Uint8Array(32),
    signature: new Uint8Array(65),
    signerKey: new Uint8Array(65),
  };

  it('accepts well-formed messages, Node Buffers included', () => {
    expect(setupRequestSchema.parse(setup)).toEqual(setup);
    expect(keyAdvertisementSchema.parse({ ...advert, maskingKey: Buffer.alloc(32) }).nodeId).toBe(
      1,
    );
  });

  it('refuses wrong byte lengths, arrays of numbers for bytes, and other versions, naming the field', () => {
    expect(
      malformed(keyAdvertisementSchema, { ...advert, encryptionKey: new Uint8Array(31) }),
    ).toMatch(/encryptionKey: encryptionKey must be 32 bytes/);
    expect(
      malformed(keyAdvertisementSchema, {
        ...advert,
        signature: Array.from({ length: 65 }, () => 0),
      }),
    ).toMatch(/signature: signature must be bytes/);
    expect(malformed(keyAdvertisementSchema, { ...advert, version: 2 })).toMatch(
      /version: version must be 1/,
    );
    expect(malformed(keyAdvertisementSchema, { ...advert, extra: true })).toMatch(
      /extra|Unrecognized/,
    );
    expect(malformed(keyAdvertisementSchema, { ...advert, nodeId: 0 })).toMatch(/nodeId/);
  });

  it('refuses duplicate participants, ragged vectors and contradictory unmask requests', () => {
    const dup = {
      ...setup,
      participants: [...setup.participants, { nodeId: 1, address: addresses[4] }],
    };
    expect(malformed(setupRequestSchema, dup)).toMatch(/participant node ids must be distinct/);
    const masked = {
      version: 1,
      stage: 'collect-masked-input',
      roundId: 4,
      nodeId: 2,
      vector: new Uint8Array(6),
      rejectedShares: [],
    };
    expect(malformed(maskedInputSchema, masked)).toMatch(/vector must be whole 32-bit words/);
    const unmask = {
      version: 1,
      stage: 'unmask',
      roundId: 4,
      nodeId: 2,
      survivors: [2, 3],
      dropped: [3],
    };
    expect(malformed(unmaskRequestSchema, unmask)).toMatch(/both a survivor and dropped/);
    const shares = [
      { owner: 3, kind: 'self-mask', share: new Uint8Array(32) },
      { owner: 3, kind: 'mask-key', share: new Uint8Array(32) },
    ];
    expect(
      malformed(unmaskResponseSchema, {
        version: 1,
        stage: 'unmask',
        roundId: 4,
        nodeId: 2,
        shares,
      }),
    ).toMatch(/one share per owner/);
  });

  it('makes the server refuse malformed, foreign-round and unknown-node messages without changing state', () => {
    const codeOf = (f: () => void) => {
      try {
        f();
      } catch (err) {
        return (err as SecAggError).code;
      }
      return 'accepted';
    };
    expect(codeOf(() => server.receiveKeyAdvertisement({ ...advert, maskingKey: 'ab' }))).toBe(
      'MALFORMED_MESSAGE',
    );
    expect(codeOf(() => server.receiveKeyAdvertisement({ ...advert, roundId: 5 }))).toBe(
      'WRONG_ROUND',
    );
    expect(codeOf(() => server.receiveKeyAdvertisement({ ...advert, nodeId: 9 }))).toBe(
      'UNKNOWN_NODE',
    );
    expect(codeOf(() => server.closeShareKeys())).toBe('WRONG_STAGE');
    expect(server.stage).toBe('advertise-keys');
  });
});
