// Governance end to end on an in-process chain: model upgrades and policy changes go through
// delegate → propose → vote → queue → timelock → execute; defeated proposals change nothing.
import { parseEther } from 'ethers';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../src/deploy.ts';
import {
  GENESIS_HASH,
  HOLDINGS,
  TEST_GOVERNANCE,
  candidate,
  deployFixture,
  expectRevert,
  type Fixture,
} from './fixture.ts';

let f: Fixture;
beforeAll(async () => {
  f = await deployFixture();
});
beforeEach(async () => {
  await f.reset();
});

/** The VoteCast event of a vote receipt: [voter, proposalId, support, weight, reason]. */
function voteCast(receipt: { logs: readonly unknown[] }) {
  for (const log of receipt.logs) {
    const parsed = f.client.contracts.governor.interface.parseLog(
      log as { topics: string[]; data: string },
    );
    if (parsed?.name === 'VoteCast') return parsed.args.toArray();
  }
  throw new Error('no VoteCast event');
}

describe('model upgrade', () => {
  it('goes from candidate to active model through a full vote', async () => {
    const { as, advance, accounts, client } = f;
    const { alice, bob, carol, dave, coordinator, outsider } = accounts;
    const next = candidate(GENESIS_HASH, 1);
    await as(coordinator).registerCandidate(next);

    const id = await as(alice).proposeActivateModel(next.contentHash, 'Activate round 1');
    expect((await client.proposal(id)).state).toBe('pending');
    await advance(TEST_GOVERNANCE.votingDelay + 1);
    expect((await client.proposal(id)).state).toBe('active');

    // For with a reason, for by signature (relayed by someone else), against, abstain.
    const aliceVote = voteCast(await as(alice).castVote(id, 'for', 'lower validation bpc'));
    expect(aliceVote.slice(2)).toEqual([1n, HOLDINGS.alice, 'lower validation bpc']);
    const signed = await as(bob).signVote(id, 'for');
    const bobVote = voteCast(await as(outsider).castVoteBySig(signed));
    expect(bobVote[0]).toBe(bob.address);
    expect(bobVote.slice(2, 4)).toEqual([1n, HOLDINGS.bob]);
    expect(await client.hasVoted(id, bob.address)).toBe(true);
    expect(await client.hasVoted(id, outsider.address)).toBe(false);
    // The signature was for one vote: replaying it fails (the nonce moved on).
    await expectRevert(as(outsider).castVoteBySig(signed), 'GovernorInvalidSignature', [
      bob.address,
    ]);
    await as(carol).castVote(id, 'against');
    await as(dave).castVote(id, 'abstain');
    await expectRevert(as(dave).castVote(id, 'for'), 'GovernorAlreadyCastVote', [dave.address]);

    const tally = (await client.proposal(id)).votes;
    expect(tally).toEqual({
      for: HOLDINGS.alice + HOLDINGS.bob,
      against: HOLDINGS.carol,
      abstain: HOLDINGS.dave,
    });

    await expectRevert(as(outsider).queue(id), 'GovernorUnexpectedProposalState');
    await advance(TEST_GOVERNANCE.votingPeriod + 1);
    expect((await client.proposal(id)).state).toBe('succeeded');
    await expectRevert(as(outsider).execute(id), 'GovernorUnexpectedProposalState');
    await as(outsider).queue(id);
    const queued = await client.proposal(id);
    expect(queued.state).toBe('queued');
    expect(queued.eta).toBeGreaterThanOrEqual((await f.now()) + TEST_GOVERNANCE.timelockDelay - 1);
    // The timelock holds it until the delay has passed.
    await expectRevert(as(outsider).execute(id), 'TimelockUnexpectedOperationState');
    await advance(TEST_GOVERNANCE.timelockDelay + 1);
    await as(outsider).execute(id);

    const active = await client.activeModel();
    expect(active.contentHash).toBe(next.contentHash);
    expect(active.parentHash).toBe(GENESIS_HASH);
    expect(await client.lineage(next.contentHash)).toEqual([next.contentHash, GENESIS_HASH]);

    const [listed] = await client.listProposals();
    expect(listed?.id).toBe(id);
    expect(listed?.state).toBe('executed');
    expect(listed?.proposer).toBe(alice.address);
    expect(listed?.description).toBe('Activate round 1');
    expect(listed?.decoded).toEqual([
      { contract: 'modelRegistry', function: 'activate', args: [next.contentHash] },
    ]);
  });

  it('activating an unregistered hash reverts at execution and changes nothing', async () => {
    const unknown = '0x' + '99'.repeat(32);
    const id = await f.as(f.accounts.alice).proposeActivateModel(unknown);
    await expectRevert(f.pass(id), 'ModelRegistryUnknownVersion', [unknown]);
    expect((await f.client.activeModel()).contentHash).toBe(GENESIS_HASH);
  });
});

describe('community base model', () => {
  const smol = {
    identity: '0x' + '5a'.repeat(32),
    format: 'hf-folder' as const,
    licence: 'apache-2.0',
    name: 'HuggingFaceTB/SmolLM2-135M-Instruct',
  };

  it('is recorded and selected by one passed proposal', async () => {
    const { as, accounts, client, pass, now } = f;
    expect(await client.baseModel()).toBeNull();
    const id = await as(accounts.alice).proposeBaseModel(smol);
    const proposal = await client.proposal(id);
    expect(proposal.description).toMatch(
      /^Record HuggingFaceTB\/SmolLM2-135M-Instruct as the community's base model\n/,
    );
    expect(proposal.decoded).toEqual([
      {
        contract: 'modelRegistry',
        function: 'recordBaseModel',
        args: [smol.identity, smol.format, smol.licence, smol.name],
      },
      { contract: 'modelRegistry', function: 'setBaseModel', args: [smol.identity] },
    ]);
    await pass(id);
    const record = await client.baseModel();
    expect(record).toEqual({
      ...smol,
      registrant: client.addresses.contracts.timelock,
      registeredAt: expect.any(Number),
    });
    expect(record!.registeredAt).toBeLessThanOrEqual(await now());
    expect(await client.listBaseModels()).toEqual([record]);
    // The community model's versions are untouched.
    expect((await client.activeModel()).contentHash).toBe(GENESIS_HASH);
  });

  it('switches to a second model, then back to the first without recording it again', async () => {
    const { as, accounts, client, pass } = f;
    const qwen = {
      identity: '0x' + '6b'.repeat(32),
      format: 'gguf' as const,
      licence: 'apache-2.0',
      name: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF',
    };
    await pass(await as(accounts.alice).proposeBaseModel(smol));
    await pass(await as(accounts.alice).proposeBaseModel(qwen));
    expect((await client.baseModel())?.identity).toBe(qwen.identity);
    expect(await client.baseModelActions(smol)).toEqual([client.setBaseModelAction(smol.identity)]);
    await pass(await as(accounts.alice).proposeBaseModel(smol, 'Back to SmolLM2'));
    expect((await client.baseModel())?.identity).toBe(smol.identity);
    expect((await client.listBaseModels()).map((m) => m.name)).toEqual([smol.name, qwen.name]);
    // Proposing what is already the base model is refused before anyone votes.
    await expect(client.baseModelActions(smol)).rejects.toThrow(
      /already the community's base model/,
    );
    await expect(client.baseModelActions({ ...smol, name: 'another' })).rejects.toThrow(
      /already the community's base model/,
    );
    await expect(client.baseModelActions({ ...qwen, format: 'hf-folder' })).rejects.toThrow(
      /is recorded as Qwen\/Qwen2.5-0.5B-Instruct-GGUF \(gguf\)/,
    );
  });

  it('a record the contract refuses passes the vote but reverts at execution by name', async () => {
    const { as, accounts, client, pass } = f;
    const action = {
      target: client.addresses.contracts.modelRegistry,
      value: 0n,
      calldata: client.contracts.modelRegistry.interface.encodeFunctionData('recordBaseModel', [
        smol.identity,
        '',
        smol.licence,
        smol.name,
      ]),
    };
    await expectRevert(
      pass(await as(accounts.alice).propose([action], 'No format')),
      'ModelRegistryEmptyFormat',
    );
    expect(await client.listBaseModels()).toEqual([]);
  });
});

describe('policy change', () => {
  it('takes effect as a new policy version after a passed vote', async () => {
    const next = {
      ...DEFAULT_POLICY,
      clipNorm: 0.5,
      noiseMultiplier: 1.3,
      aggregationRule: 'krum' as const,
    };
    const id = await f.as(f.accounts.alice).proposePolicy(next, 'Tighter clipping, Krum');
    await f.pass(id);
    expect(await f.client.policy()).toEqual({ version: 2, policy: next });
    expect(await f.client.policyAt(1)).toEqual(DEFAULT_POLICY);
  });

  it('sets the weight cap per upload by vote; a cap of 0 reverts at execution by name', async () => {
    const next = { ...DEFAULT_POLICY, maxExamplesPerUpdate: 500 };
    await f.pass(await f.as(f.accounts.alice).proposePolicy(next, 'Cap FedAvg weight at 500'));
    expect(await f.client.policy()).toEqual({ version: 2, policy: next });
    const zero = await f.as(f.accounts.alice).proposePolicy({ ...next, maxExamplesPerUpdate: 0 });
    await expectRevert(f.pass(zero), 'FederationPolicyOutOfRange', [
      'maxExamplesPerUpdate',
      0n,
      1n,
      2n ** 32n - 1n,
    ]);
    expect((await f.client.policy()).policy.maxExamplesPerUpdate).toBe(500);
  });

  it('an out-of-range policy passes the vote but reverts at execution', async () => {
    const id = await f.as(f.accounts.alice).proposePolicy({ ...DEFAULT_POLICY, localEpochs: 0 });
    await expectRevert(f.pass(id), 'FederationPolicyOutOfRange', ['localEpochs', 0n, 1n, 100n]);
    expect((await f.client.policy()).version).toBe(1);
  });
});

describe('defeated proposals change nothing', () => {
  async function voteAndClose(votes: [keyof Fixture['accounts'], 'for' | 'against' | 'abstain'][]) {
    const next = candidate(GENESIS_HASH, 7);
    await f.as(f.accounts.coordinator).registerCandidate(next);
    const id = await f.as(f.accounts.alice).proposeActivateModel(next.contentHash);
    await f.advance(TEST_GOVERNANCE.votingDelay + 1);
    for (const [who, support] of votes) await f.as(f.accounts[who]).castVote(id, support);
    await f.advance(TEST_GOVERNANCE.votingPeriod + 1);
    return id;
  }

  it('without quorum', async () => {
    const id = await voteAndClose([['dave', 'for']]); // 10k of the 40k quorum
    expect((await f.client.proposal(id)).state).toBe('defeated');
    await expectRevert(f.as(f.accounts.outsider).queue(id), 'GovernorUnexpectedProposalState');
    expect((await f.client.activeModel()).contentHash).toBe(GENESIS_HASH);
  });

  it('with more votes against than for', async () => {
    const id = await voteAndClose([
      ['alice', 'for'],
      ['bob', 'against'],
    ]);
    const proposal = await f.client.proposal(id);
    expect(proposal.state).toBe('defeated');
    expect(proposal.quorum).toBe(parseEther('40000'));
    await expectRevert(f.as(f.accounts.outsider).queue(id), 'GovernorUnexpectedProposalState');
    expect((await f.client.activeModel()).contentHash).toBe(GENESIS_HASH);
  });

  it('abstentions count toward quorum but not toward success', async () => {
    // carol's 40k abstain reaches quorum exactly; dave's 10k for beats no against.
    const id = await voteAndClose([
      ['carol', 'abstain'],
      ['dave', 'for'],
    ]);
    expect((await f.client.proposal(id)).state).toBe('succeeded');
  });
});

describe('voting power', () => {
  it('tokens acquired after the snapshot carry no votes on that proposal', async () => {
    const { as, accounts, client, advance } = f;
    const { deployer, alice, eve } = accounts;
    const id = await as(alice).proposeActivateModel(GENESIS_HASH);
    await advance(TEST_GOVERNANCE.votingDelay + 1);
    // After the snapshot: eve buys in and delegates, alice receives more.
    const token = client.contracts.token;
    await (
      await token.connect(deployer).getFunction('transfer')(eve.address, parseEther('100000'))
    ).wait();
    await (
      await token.connect(deployer).getFunction('transfer')(alice.address, parseEther('50000'))
    ).wait();
    await as(eve).delegate();
    expect(await client.votes(eve.address)).toBe(parseEther('100000'));

    expect(voteCast(await as(eve).castVote(id, 'for'))[3]).toBe(0n);
    expect(voteCast(await as(alice).castVote(id, 'for'))[3]).toBe(HOLDINGS.alice);
    expect((await client.proposal(id)).votes.for).toBe(HOLDINGS.alice);
  });

  it('undelegated tokens do not vote', async () => {
    expect(await f.client.balanceOf(f.accounts.deployer.address)).toBe(HOLDINGS.deployer);
    expect(await f.client.votes(f.accounts.deployer.address)).toBe(0n);
  });

  it('proposing needs the proposal threshold', async () => {
    const { eve } = f.accounts;
    await expectRevert(
      f.as(eve).proposeActivateModel(GENESIS_HASH),
      'GovernorInsufficientProposerVotes',
      [eve.address, 0n, TEST_GOVERNANCE.proposalThreshold],
    );
  });
});

describe('late quorum', () => {
  it('extends the deadline when quorum is reached late', async () => {
    const { as, accounts, client, advance, now } = f;
    const id = await as(accounts.alice).proposeActivateModel(GENESIS_HASH);
    const original = (await client.proposal(id)).deadline;
    // Move to a few seconds before the deadline, then reach quorum.
    await advance(original - (await now()) - 5);
    await as(accounts.alice).castVote(id, 'for');
    const voteTime = await now();
    const extended = (await client.proposal(id)).deadline;
    expect(extended).toBe(voteTime + TEST_GOVERNANCE.voteExtension);
    expect(extended).toBeGreaterThan(original);
    // Past the original deadline the vote is still open, so bob can still react.
    await advance(10);
    expect(await now()).toBeGreaterThan(original);
    expect((await client.proposal(id)).state).toBe('active');
    await as(accounts.bob).castVote(id, 'against');
    await advance(TEST_GOVERNANCE.voteExtension + 1);
    expect((await client.proposal(id)).state).toBe('defeated');
  });
});

describe('governance administers the system', () => {
  it('changes the rewards budget and grants and revokes the coordinator role', async () => {
    const { as, accounts, client, pass } = f;
    const { alice, outsider, coordinator } = accounts;
    const id = await as(alice).propose(
      [
        client.setRoundBudgetAction(parseEther('5000')),
        client.coordinatorRoleAction('modelRegistry', outsider.address, true),
        client.coordinatorRoleAction('modelRegistry', coordinator.address, false),
      ],
      'New coordinator, bigger budget',
    );
    await pass(id);
    expect(await client.roundBudget()).toBe(parseEther('5000'));
    await as(outsider).registerCandidate(candidate(GENESIS_HASH, 3));
    await expectRevert(
      as(coordinator).registerCandidate(candidate(GENESIS_HASH, 4)),
      'AccessControlUnauthorizedAccount',
    );
  });

  it('changes its own settings only through a proposal', async () => {
    const { as, accounts, client, pass } = f;
    const governor = client.contracts.governor;
    const action = {
      target: client.addresses.contracts.governor,
      value: 0n,
      calldata: governor.interface.encodeFunctionData('setVotingPeriod', [200]),
    };
    await pass(await as(accounts.alice).propose([action], 'Longer votes'));
    expect((await client.governanceSettings()).votingPeriod).toBe(200);
  });
});
