import { describe, expect, it } from 'vitest';
import { deployFixture, expectRevert, GENESIS_HASH } from './fixture.ts';

describe('smoke', () => {
  it('deploys', async () => {
    const f = await deployFixture();
    const active = await f.client.activeModel();
    expect(active.contentHash).toBe(GENESIS_HASH);
    await expectRevert(f.client.withSigner(f.accounts.outsider).registerCandidate({contentHash: '11'.repeat(32), parentHash: GENESIS_HASH, uri: 'x', roundId: 1, valBpc: 1, epsilon: 1, delta: 1e-5}), 'AccessControlUnauthorizedAccount');
  });
});
