import { createHash } from 'node:crypto';
import { ProtocolError } from '@commons/shared/protocol';
import { describe, expect, it } from 'vitest';
import { MaskedUpload } from '../src/secagg/masked-upload.ts';

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function code(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return `${(err as ProtocolError).code}: ${(err as Error).message}`;
  }
  throw new Error('accepted');
}

describe('a masked vector in flight (MaskedUpload)', () => {
  const vector = Uint8Array.from({ length: 40 }, (_, i) => i * 7);

  it('hands back the chunks as they arrived, no copy, once size and hash match', () => {
    const upload = new MaskedUpload('0xabc', 40);
    const chunks = [vector.subarray(0, 16), vector.subarray(16, 32), vector.subarray(32)];
    chunks.forEach((chunk, i) => upload.add(i, chunk));
    const segments = upload.finish(40, sha(vector));
    expect(segments).toHaveLength(3);
    segments.forEach((segment, i) => expect(segment).toBe(chunks[i]));
  });

  it('refuses chunks out of order, not whole words, or past the vector, and a wrong hash or size', () => {
    const upload = new MaskedUpload('0xabc', 40);
    expect(code(() => upload.add(1, vector.subarray(0, 8)))).toMatch(
      /TRUNCATED: masked chunk 1 arrived but chunk 0 was expected/,
    );
    expect(code(() => upload.add(0, vector.subarray(0, 6)))).toMatch(
      /WRONG_SHAPE: masked chunk 0 is 6 bytes; chunks are whole 32-bit words/,
    );
    upload.add(0, vector.subarray(0, 36));
    expect(code(() => upload.add(1, vector.subarray(0, 8)))).toMatch(
      /UPLOAD_TOO_LARGE: masked chunk 1 would bring the vector to 44 bytes; the round's is 40/,
    );
    expect(code(() => upload.finish(40, sha(vector)))).toMatch(/TRUNCATED: .* after 36 of 40/);
    upload.add(1, vector.subarray(36));
    expect(code(() => upload.finish(44, sha(vector)))).toMatch(/WRONG_SHAPE: 44 masked bytes/);
    expect(code(() => upload.finish(40, sha(vector.subarray(1))))).toMatch(/HASH_MISMATCH/);
  });
});
