// ModelRegistry: genesis at deployment, candidate registration rules, lineage.
import { ZeroHash } from 'ethers';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GENESIS_HASH, candidate, deployFixture, expectRevert, type Fixture } from './fixture.ts';

let f: Fixture;
beforeAll(async () => {
  f = await deployFixture();
});
beforeEach(async () => {
  await f.reset();
});

describe('ModelRegistry', () => {
  it('registers and activates the genesis model at deployment', async () => {
    const genesis = await f.client.activeModel();
    expect(genesis).toMatchObject({
      contentHash: GENESIS_HASH,
      parentHash: null,
      uri: 'sha256:genesis',
      roundId: 0,
      valBpc: 2.5,
      registrant: f.accounts.deployer.address,
    });
    expect(await f.client.listModels()).toEqual([genesis]);
    expect(await f.client.lineage(GENESIS_HASH)).toEqual([GENESIS_HASH]);
  });

  it('records a candidate with its metrics without activating it', async () => {
    const next = candidate(GENESIS_HASH, 1);
    const receipt = await f.as(f.accounts.coordinator).registerCandidate(next);
    const event = receipt.logs
      .map((log) => f.client.contracts.modelRegistry.interface.parseLog(log))
      .find((parsed) => parsed?.name === 'ModelRegistered');
    expect(event?.args.toArray()).toEqual([
      next.contentHash,
      GENESIS_HASH,
      1n,
      f.accounts.coordinator.address,
      next.uri,
    ]);
    expect(await f.client.modelVersion(next.contentHash)).toMatchObject({
      contentHash: next.contentHash,
      parentHash: GENESIS_HASH,
      roundId: 1,
      contributorsRoot: next.contributorsRoot,
      valBpc: 2.25,
      epsilon: 1.5,
      delta: 1e-5,
      registrant: f.accounts.coordinator.address,
    });
    expect(await f.client.isRegistered(next.contentHash)).toBe(true);
    expect((await f.client.activeModel()).contentHash).toBe(GENESIS_HASH);
  });

  it('roundOf gives the round and contributors root rewards are checked against', async () => {
    const next = candidate(GENESIS_HASH, 5, 3);
    await f.as(f.accounts.coordinator).registerCandidate(next);
    const roundOf = f.client.contracts.modelRegistry.getFunction('roundOf');
    expect((await roundOf.staticCall(next.contentHash)).toArray()).toEqual([
      true,
      3n,
      next.contributorsRoot,
    ]);
    expect((await roundOf.staticCall(GENESIS_HASH)).toArray()).toEqual([true, 0n, ZeroHash]);
    for (const unknown of ['0x' + '77'.repeat(32), ZeroHash]) {
      expect((await roundOf.staticCall(unknown)).toArray()).toEqual([false, 0n, ZeroHash]);
    }
  });

  it('rejects duplicates, unknown parents, zero hashes and empty URIs', async () => {
    const coordinator = f.as(f.accounts.coordinator);
    const next = candidate(GENESIS_HASH, 1);
    await coordinator.registerCandidate(next);
    await expectRevert(coordinator.registerCandidate(next), 'ModelRegistryAlreadyRegistered', [
      next.contentHash,
    ]);
    const orphanParent = '0x' + '77'.repeat(32);
    await expectRevert(
      coordinator.registerCandidate(candidate(orphanParent, 2)),
      'ModelRegistryUnknownParent',
      [orphanParent],
    );
    await expectRevert(
      coordinator.registerCandidate({ ...candidate(GENESIS_HASH, 3), contentHash: '0'.repeat(64) }),
      'ModelRegistryZeroHash',
    );
    await expectRevert(
      coordinator.registerCandidate({ ...candidate(GENESIS_HASH, 4), uri: '' }),
      'ModelRegistryEmptyUri',
    );
  });

  it('walks lineage back to genesis, bounded by maxDepth', async () => {
    const coordinator = f.as(f.accounts.coordinator);
    const chain = [GENESIS_HASH];
    for (let round = 1; round <= 5; round++) {
      const next = candidate(chain[chain.length - 1] as string, round);
      await coordinator.registerCandidate(next);
      chain.push(next.contentHash);
    }
    const newest = chain[5] as string;
    expect(await f.client.lineage(newest)).toEqual([...chain].reverse());
    expect(await f.client.lineage(newest, 2)).toEqual([chain[5], chain[4]]);
    expect((await f.client.listModels()).map((m) => m.contentHash)).toEqual(chain);
    const unknown = '0x' + '55'.repeat(32);
    await expectRevert(f.client.lineage(unknown), 'ModelRegistryUnknownVersion', [unknown]);
  });

  it('re-activating the active version reverts', async () => {
    const timelock = await f.impersonateTimelock();
    const registry = f.client.contracts.modelRegistry.connect(timelock);
    await expectRevert(
      registry.getFunction('activate').send(GENESIS_HASH),
      'ModelRegistryAlreadyActive',
      [GENESIS_HASH],
    );
  });

  it('governance can roll back to an earlier version', async () => {
    const next = candidate(GENESIS_HASH, 1);
    await f.as(f.accounts.coordinator).registerCandidate(next);
    await f.pass(await f.as(f.accounts.alice).proposeActivateModel(next.contentHash));
    expect((await f.client.activeModel()).contentHash).toBe(next.contentHash);
    await f.pass(await f.as(f.accounts.alice).proposeActivateModel(GENESIS_HASH, 'Roll back'));
    expect((await f.client.activeModel()).contentHash).toBe(GENESIS_HASH);
  });
});
