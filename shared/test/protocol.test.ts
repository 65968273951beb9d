import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { buildMerkleTree, verifyMerkleProof } from '@commons/chain';
import { sha256Hex } from '../src/checkpoint/hash.ts';
import { encodeTensors, frameEncoding } from '../src/checkpoint/update-codec.ts';
import type { NamedTensors } from '../src/checkpoint/tensors.ts';
import {
  MAX_MESSAGE_DEPTH,
  PROTOCOL_VERSION,
  ProtocolError,
  REJECT_CODES,
  SIWE_CLOCK_SKEW_MS,
  chunksOf,
  commitmentDigest,
  formatSiweMessage,
  frameByteLength,
  nestedDeeperThan,
  parseSiweMessage,
  rejectionSchema,
  roundTaskSchema,
  signChallenge,
  signCommitment,
  siweMessageFor,
  uploadBeginSchema,
  verifyCommitment,
  verifySiweLogin,
  verifySiweSession,
  type Challenge,
  type UploadBegin,
} from '../src/protocol/index.ts';

const wallet = new Wallet('0x' + '11'.repeat(32));
const other = new Wallet('0x' + '22'.repeat(32));
const now = Date.parse('2026-11-25T12:00:00Z');

const challenge: Challenge = {
  protocolVersion: PROTOCOL_VERSION,
  domain: '127.0.0.1:4000',
  uri: 'http://127.0.0.1:4000',
  chainId: 31337,
  nonce: 'abcDEF123456ghij',
  statement: 'Sign in to the Commons federation coordinator.',
  issuedAt: new Date(now).toISOString(),
  expirationTime: new Date(now + 600_000).toISOString(),
};

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof ProtocolError ? error.code : `not a ProtocolError: ${String(error)}`;
  }
  return undefined;
}

describe('Sign-In with Ethereum', () => {
  it('formats the EIP-4361 message and parses it back', () => {
    const text = siweMessageFor(challenge, wallet.address);
    expect(text.split('\n')[0]).toBe(
      '127.0.0.1:4000 wants you to sign in with your Ethereum account:',
    );
    expect(text).toContain(`\n${wallet.address}\n\n`);
    expect(text).toContain('\nURI: http://127.0.0.1:4000\nVersion: 1\nChain ID: 31337\n');
    const fields = parseSiweMessage(text);
    expect(formatSiweMessage(fields)).toBe(text);
  });

  it('accepts a login signed for this challenge and names the address', async () => {
    const { message, signature } = await signChallenge(challenge, wallet);
    expect(verifySiweLogin(challenge, message, signature, now)).toBe(wallet.address);
  });

  it('refuses another nonce, domain or chain, an expired message and a wrong signer', async () => {
    const { message, signature } = await signChallenge(challenge, wallet);
    expect(
      code(() => verifySiweLogin({ ...challenge, nonce: 'zzzzzzzzzzzz' }, message, signature, now)),
    ).toBe('BAD_LOGIN');
    expect(
      code(() =>
        verifySiweLogin({ ...challenge, domain: 'evil.example' }, message, signature, now),
      ),
    ).toBe('BAD_LOGIN');
    expect(code(() => verifySiweLogin({ ...challenge, chainId: 1 }, message, signature, now))).toBe(
      'BAD_LOGIN',
    );
    expect(code(() => verifySiweLogin(challenge, message, signature, now + 601_000))).toBe(
      'BAD_LOGIN',
    );
    const forged = await other.signMessage(message);
    expect(() => verifySiweLogin(challenge, message, forged, now)).toThrow(/not 0x/);
    // The message claims wallet's address but another key signs it.
    const claimed = siweMessageFor(challenge, wallet.address);
    expect(code(() => verifySiweLogin(challenge, claimed, forged, now))).toBe('BAD_LOGIN');
  });

  it('refuses a validity window the client chose instead of the challenge', async () => {
    const signed = async (window: { issuedAt: string; expirationTime: string }) => {
      const message = formatSiweMessage({
        ...challenge,
        address: wallet.address,
        version: '1',
        ...window,
      });
      return { message, signature: await wallet.signMessage(message) };
    };
    const refusal = async (window: { issuedAt: string; expirationTime: string }) => {
      const { message, signature } = await signed(window);
      try {
        verifySiweLogin(challenge, message, signature, now);
      } catch (error) {
        return error instanceof ProtocolError ? `${error.code}: ${error.message}` : String(error);
      }
      return 'accepted';
    };
    const at = (ms: number) => new Date(ms).toISOString();
    // The hostile case: issued long before the nonce existed, valid for a century.
    expect(
      await refusal({
        issuedAt: '2001-01-01T00:00:00.000Z',
        expirationTime: '2099-01-01T00:00:00.000Z',
      }),
    ).toMatch(/^BAD_LOGIN: .*2001.*before its nonce/);
    // Issued now, but for longer than the server offers.
    expect(
      await refusal({ issuedAt: at(now), expirationTime: '2099-01-01T00:00:00.000Z' }),
    ).toMatch(/^BAD_LOGIN: .*2099.*after the/);
    // Issued in the future by more than the allowed skew.
    expect(
      await refusal({
        issuedAt: at(now + SIWE_CLOCK_SKEW_MS + 1_000),
        expirationTime: challenge.expirationTime,
      }),
    ).toMatch(/^BAD_LOGIN: .*in the future/);
    // Within the skew either way, and a shorter session than offered, are fine.
    expect(
      await refusal({
        issuedAt: at(now + SIWE_CLOCK_SKEW_MS - 1_000),
        expirationTime: at(now + 60_000),
      }),
    ).toBe('accepted');
    expect(
      await refusal({
        issuedAt: at(now - SIWE_CLOCK_SKEW_MS + 1_000),
        expirationTime: challenge.expirationTime,
      }),
    ).toBe('accepted');
    // Not RFC 3339, though Date.parse would take it.
    expect(await refusal({ issuedAt: '2026', expirationTime: challenge.expirationTime })).toMatch(
      /^BAD_LOGIN: issuedAt is not an RFC 3339 date-time/,
    );
  });

  it("opens a session that ends at the message's expiry", async () => {
    const { message, signature } = await signChallenge(challenge, wallet);
    expect(verifySiweSession(challenge, message, signature, now)).toEqual({
      address: wallet.address,
      expiresAt: now + 600_000,
    });
  });

  it('refuses a message that is not EIP-4361 or whose address is not checksummed', () => {
    expect(code(() => parseSiweMessage('hello'))).toBe('BAD_LOGIN');
    const lower = siweMessageFor(challenge, wallet.address).replace(
      wallet.address,
      wallet.address.toLowerCase(),
    );
    expect(() => parseSiweMessage(lower)).toThrow(/checksum/);
  });
});

describe('update commitments (EIP-712)', () => {
  const unsigned: Omit<UploadBegin, 'signature'> = {
    roundId: 7,
    baseModel: 'ab'.repeat(32),
    contributor: wallet.address,
    encoding: 'int8',
    byteLength: 1234,
    sha256: 'cd'.repeat(32),
    numExamples: 500,
  };

  it('verifies a signature by the contributor and refuses the same signature replayed elsewhere', async () => {
    const signature = await signCommitment(unsigned, wallet, 31337);
    const begin = uploadBeginSchema.parse({ ...unsigned, signature });
    expect(() => verifyCommitment(begin, 31337)).not.toThrow();
    expect(code(() => verifyCommitment({ ...begin, roundId: 8 }, 31337))).toBe('BAD_SIGNATURE');
    expect(code(() => verifyCommitment({ ...begin, baseModel: 'ef'.repeat(32) }, 31337))).toBe(
      'BAD_SIGNATURE',
    );
    expect(code(() => verifyCommitment({ ...begin, numExamples: 501 }, 31337))).toBe(
      'BAD_SIGNATURE',
    );
    expect(code(() => verifyCommitment(begin, 1))).toBe('BAD_SIGNATURE');
    expect(code(() => verifyCommitment({ ...begin, contributor: other.address }, 31337))).toBe(
      'BAD_SIGNATURE',
    );
  });

  it('gives distinct digests to distinct commitments (Merkle leaves)', () => {
    const a = commitmentDigest(unsigned, 31337);
    expect(a).toMatch(/^0x[0-9a-f]{64}$/);
    expect(commitmentDigest({ ...unsigned, roundId: 8 }, 31337)).not.toBe(a);
    expect(commitmentDigest(unsigned, 31337)).toBe(a);
  });
});

describe('upload framing', () => {
  const tensors: NamedTensors = new Map([
    ['wte', { shape: [5, 3], data: Float32Array.from({ length: 15 }, (_, i) => i / 10 - 0.7) }],
    ['h.0.ln_1.bias', { shape: [3], data: Float32Array.from([0.1, -0.2, 0.3]) }],
  ]);
  const layout = [...tensors].map(([name, { shape }]) => ({ name, shape }));

  it('predicts the exact frame size for every encoding', () => {
    for (const encoding of ['fp32', 'fp16', 'int8'] as const) {
      expect(frameByteLength(layout, encoding)).toBe(encodeTensors(tensors, encoding).byteLength);
    }
  });

  it("reads a frame's declared encoding from its header alone", () => {
    for (const encoding of ['fp32', 'fp16', 'int8'] as const) {
      expect(frameEncoding(encodeTensors(tensors, encoding))).toBe(encoding);
    }
    const relabelled = encodeTensors(tensors, 'fp32');
    relabelled[5] = 2;
    expect(frameEncoding(relabelled)).toBe('int8');
    relabelled[5] = 9;
    expect(frameEncoding(relabelled)).toBeUndefined();
    expect(frameEncoding(new Uint8Array([1, 2, 3]))).toBeUndefined();
    expect(frameEncoding(new TextEncoder().encode('not an update frame'))).toBeUndefined();
  });

  it('cuts a frame into in-order views that reassemble to the same bytes', () => {
    const frame = encodeTensors(tensors, 'fp32');
    const chunks = [...chunksOf(frame, 16)];
    expect(chunks.length).toBe(Math.ceil(frame.byteLength / 16));
    const joined = new Uint8Array(frame.byteLength);
    let at = 0;
    for (const chunk of chunks) {
      joined.set(chunk, at);
      at += chunk.byteLength;
    }
    expect(sha256Hex(joined)).toBe(sha256Hex(frame));
    expect(() => [...chunksOf(frame, 0)]).toThrow(RangeError);
  });
});

describe('refusal codes', () => {
  it('carries every code, the encoding mismatch and the connection cap included', () => {
    expect(REJECT_CODES).toEqual(
      expect.arrayContaining(['ENCODING_MISMATCH', 'TOO_MANY_CONNECTIONS']),
    );
    expect(new Set(REJECT_CODES).size).toBe(REJECT_CODES.length);
    for (const code of REJECT_CODES) {
      const rejection = new ProtocolError(code, `refused: ${code}`).toRejection();
      expect(rejectionSchema.parse(rejection)).toEqual({ code, message: `refused: ${code}` });
      expect(ProtocolError.from(rejection).code).toBe(code);
    }
    expect(rejectionSchema.safeParse({ code: 'NO_SUCH_CODE', message: '' }).success).toBe(false);
  });
});

describe('message depth', () => {
  const nest = (depth: number, wrap: (inner: unknown) => unknown) => {
    let value: unknown = 1;
    for (let i = 0; i < depth; i++) value = wrap(value);
    return value;
  };

  it('bounds nesting without recursion, at any depth', () => {
    expect(nestedDeeperThan({ a: 1, b: [1, 2] }, MAX_MESSAGE_DEPTH)).toBe(false);
    expect(
      nestedDeeperThan(
        nest(MAX_MESSAGE_DEPTH, (v) => ({ v })),
        MAX_MESSAGE_DEPTH,
      ),
    ).toBe(false);
    expect(
      nestedDeeperThan(
        nest(MAX_MESSAGE_DEPTH + 1, (v) => [v]),
        MAX_MESSAGE_DEPTH,
      ),
    ).toBe(true);
    // Far deeper than any recursive walk survives.
    expect(
      nestedDeeperThan(
        nest(1_000_000, (v) => ({ v })),
        MAX_MESSAGE_DEPTH,
      ),
    ).toBe(true);
  });

  it('treats bytes as leaves', () => {
    expect(nestedDeeperThan([new Uint8Array(1 << 20), new ArrayBuffer(8)], 1)).toBe(false);
  });
});

describe('schemas', () => {
  it('refuse a task with a bad hash and name the field', () => {
    const parsed = roundTaskSchema.safeParse({
      roundId: 1,
      baseModel: { hash: 'xyz', path: '/m/' },
    });
    expect(parsed.success).toBe(false);
  });
});

describe('Merkle tree', () => {
  it('proves every leaf, whatever the count, and refuses a wrong leaf', () => {
    for (const n of [1, 2, 3, 5, 8]) {
      const leaves = Array.from({ length: n }, (_, i) => '0x' + sha256Hex(new Uint8Array([i])));
      const tree = buildMerkleTree(leaves);
      leaves.forEach((leaf, i) =>
        expect(verifyMerkleProof(tree.root, leaf, tree.proofs[i]!)).toBe(true),
      );
      expect(verifyMerkleProof(tree.root, '0x' + '00'.repeat(32), tree.proofs[0]!)).toBe(n === 0);
    }
  });
});
