// ModelRegistry: genesis at deployment, candidate registration rules, lineage, base models.
import { ContractFactory, ZeroHash } from 'ethers';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { commonsAbis, encodeCandidate } from '@commons/chain';
import { readCompiledBytecode } from '../src/generated.ts';
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

describe('ModelRegistry versions as (base, adapter, parent)', () => {
  const adapterOf = (seed: number) => '0x' + 'ad'.repeat(31) + seed.toString(16).padStart(2, '0');

  it('records a full version as its own base and an adapter version on its parent base', async () => {
    const coordinator = f.as(f.accounts.coordinator);
    const genesis = await f.client.activeModel();
    expect(genesis).toMatchObject({ baseHash: GENESIS_HASH, adapterHash: null });

    const first = {
      ...candidate(GENESIS_HASH, 1),
      baseHash: GENESIS_HASH,
      adapterHash: adapterOf(1),
    };
    const receipt = await coordinator.registerCandidate(first);
    const events = receipt.logs
      .map((log) => f.client.contracts.modelRegistry.interface.parseLog(log))
      .filter((parsed) => parsed !== null);
    expect(events.map((e) => e.name)).toEqual(['ModelRegistered', 'AdapterRegistered']);
    expect(events[1]!.args.toArray()).toEqual([first.contentHash, GENESIS_HASH, adapterOf(1)]);
    expect(await f.client.modelVersion(first.contentHash)).toMatchObject({
      contentHash: first.contentHash,
      parentHash: GENESIS_HASH,
      baseHash: GENESIS_HASH,
      adapterHash: adapterOf(1),
    });
    const second = {
      ...candidate(first.contentHash, 2),
      baseHash: GENESIS_HASH,
      adapterHash: adapterOf(2),
    };
    await coordinator.registerCandidate(second);
    // Running `second` takes genesis and the two adapters, oldest first.
    expect(await f.client.adapterChain(second.contentHash)).toEqual({
      base: GENESIS_HASH,
      adapters: [adapterOf(1), adapterOf(2)],
    });
    expect(await f.client.adapterChain(GENESIS_HASH)).toEqual({ base: GENESIS_HASH, adapters: [] });
    // Memory is the chain's length, not maxDepth: a generous bound costs nothing.
    expect(await f.client.adapterChain(second.contentHash, 10_000_000)).toEqual({
      base: GENESIS_HASH,
      adapters: [adapterOf(1), adapterOf(2)],
    });

    // A full-delta round after them starts a new base: the walk stops there.
    const full = candidate(second.contentHash, 3);
    await coordinator.registerCandidate(full);
    expect(await f.client.modelVersion(full.contentHash)).toMatchObject({
      baseHash: full.contentHash,
      adapterHash: null,
    });
    const third = {
      ...candidate(full.contentHash, 4),
      baseHash: full.contentHash,
      adapterHash: adapterOf(4),
    };
    await coordinator.registerCandidate(third);
    expect(await f.client.adapterChain(third.contentHash)).toEqual({
      base: full.contentHash,
      adapters: [adapterOf(4)],
    });
    // A chain longer than the depth asked for is refused by name, not cut short.
    await expectRevert(f.client.adapterChain(second.contentHash, 1), 'ModelRegistryChainTooLong', [
      second.contentHash,
      1n,
    ]);
  });

  it('refuses an adapter version on another base, and a full version that is not its own base', async () => {
    const coordinator = f.as(f.accounts.coordinator);
    const wrongBase = '0x' + 'be'.repeat(32);
    await expectRevert(
      coordinator.registerCandidate({
        ...candidate(GENESIS_HASH, 1),
        baseHash: wrongBase,
        adapterHash: adapterOf(1),
      }),
      'ModelRegistryBaseMismatch',
      [GENESIS_HASH, wrongBase],
    );
    const next = candidate(GENESIS_HASH, 2);
    await expectRevert(
      coordinator.registerCandidate({ ...next, baseHash: GENESIS_HASH }),
      'ModelRegistryFullVersionBase',
      [next.contentHash, GENESIS_HASH],
    );
    // From the wrong account, an otherwise valid adapter version is refused by role.
    await expectRevert(
      f.as(f.accounts.outsider).registerCandidate({
        ...candidate(GENESIS_HASH, 3),
        baseHash: GENESIS_HASH,
        adapterHash: adapterOf(3),
      }),
      'AccessControlUnauthorizedAccount',
    );
    expect(await f.client.listModels()).toHaveLength(1);
  });

  it('deploys only with a full genesis: no adapter, its own base', async () => {
    const bytecode = (await readCompiledBytecode(f.hre)).modelRegistry;
    const factory = new ContractFactory(commonsAbis.modelRegistry, bytecode, f.accounts.deployer);
    const { deployer, coordinator } = f.accounts;
    const genesis = { ...candidate(ZeroHash, 1, 0), parentHash: ZeroHash };
    const deploy = (patch: { baseHash?: string; adapterHash?: string }) =>
      factory.deploy(
        deployer.address,
        coordinator.address,
        encodeCandidate({ ...genesis, ...patch }),
      );
    // An adapter genesis is refused even when it names itself as its base.
    await expectRevert(deploy({ adapterHash: adapterOf(1) }), 'ModelRegistryFullVersionBase', [
      genesis.contentHash,
      genesis.contentHash,
    ]);
    await expectRevert(deploy({ baseHash: GENESIS_HASH }), 'ModelRegistryFullVersionBase', [
      genesis.contentHash,
      GENESIS_HASH,
    ]);
    const registry = await (await deploy({})).waitForDeployment();
    const version = (await registry.getFunction('getVersion').staticCall(genesis.contentHash)) as {
      baseHash: string;
      adapterHash: string;
    };
    expect([version.baseHash, version.adapterHash]).toEqual([genesis.contentHash, ZeroHash]);
  });
});

describe('ModelRegistry base models', () => {
  const identity = '0x' + '5a'.repeat(32);
  const record = ['hf-folder', 'apache-2.0', 'HuggingFaceTB/SmolLM2-135M-Instruct'] as const;

  async function asTimelock() {
    const timelock = await f.impersonateTimelock();
    return f.client.contracts.modelRegistry.connect(timelock);
  }

  it('starts with none recorded and no community base model', async () => {
    expect(await f.client.baseModel()).toBeNull();
    expect(await f.client.listBaseModels()).toEqual([]);
    expect(await f.client.isBaseModelRecorded(identity)).toBe(false);
    await expectRevert(f.client.baseModelRecord(identity), 'ModelRegistryUnknownBaseModel', [
      identity,
    ]);
  });

  it('records a base model with its events, once, and selects it', async () => {
    const registry = await asTimelock();
    const timelock = f.addresses.contracts.timelock;
    const receipt = await (
      await registry.getFunction('recordBaseModel').send(identity, ...record)
    ).wait();
    const events = receipt!.logs.map((log) => registry.interface.parseLog(log));
    expect(events.find((e) => e?.name === 'BaseModelRecorded')?.args.toArray()).toEqual([
      identity,
      record[2],
      record[0],
      record[1],
      timelock,
    ]);
    expect(await f.client.isBaseModelRecorded(identity)).toBe(true);
    expect(await f.client.baseModel()).toBeNull();
    await expectRevert(
      registry.getFunction('recordBaseModel').send(identity, 'gguf', 'mit', 'again'),
      'ModelRegistryBaseModelAlreadyRecorded',
      [identity],
    );

    const selected = await (await registry.getFunction('setBaseModel').send(identity)).wait();
    const selection = selected!.logs
      .map((log) => registry.interface.parseLog(log))
      .find((e) => e?.name === 'BaseModelSelected');
    expect(selection?.args.toArray()).toEqual([identity, ZeroHash]);
    expect(await f.client.baseModel()).toMatchObject({
      identity,
      format: record[0],
      licence: record[1],
      name: record[2],
      registrant: timelock,
    });
    await expectRevert(
      registry.getFunction('setBaseModel').send(identity),
      'ModelRegistryAlreadyBaseModel',
      [identity],
    );
  });

  it('refuses a zero identity, an empty format or name, and selecting an unknown model', async () => {
    const registry = await asTimelock();
    const record = registry.getFunction('recordBaseModel');
    await expectRevert(record.send(ZeroHash, 'gguf', 'mit', 'x'), 'ModelRegistryZeroIdentity');
    await expectRevert(record.send(identity, '', 'mit', 'x'), 'ModelRegistryEmptyFormat');
    await expectRevert(record.send(identity, 'gguf', 'mit', ''), 'ModelRegistryEmptyName');
    await expectRevert(
      registry.getFunction('setBaseModel').send(identity),
      'ModelRegistryUnknownBaseModel',
      [identity],
    );
    expect(await f.client.isBaseModelRecorded(ZeroHash)).toBe(false);
  });

  it('the client refuses what the contract would, and formats Commons does not read', () => {
    const base = { identity, format: 'gguf' as const, licence: 'mit', name: 'x' };
    expect(() => f.client.recordBaseModelAction({ ...base, identity: ZeroHash })).toThrow(/zero/);
    expect(() => f.client.recordBaseModelAction({ ...base, name: ' ' })).toThrow(/name/);
    expect(() => f.client.recordBaseModelAction({ ...base, licence: '' })).toThrow(/licence/);
    expect(() =>
      f.client.recordBaseModelAction({ ...base, format: 'onnx' as unknown as 'gguf' }),
    ).toThrow(/hf-folder, gguf/);
  });
});
