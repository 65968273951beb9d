// ContributionRewards: only a round with a registered candidate (same round id, same contributors
// root) can be paid; a posted round mints its total; Merkle claims pay each leaf once, within the
// round's total and the governed per-round budget; a property test over random trees.
import { Wallet, ZeroHash, parseEther } from 'ethers';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RewardedCandidate, buildRewardTree, type RewardEntry } from '@commons/chain';
import {
  GENESIS_HASH,
  HOLDINGS,
  candidate,
  deployFixture,
  expectRevert,
  type Fixture,
} from './fixture.ts';
import { random } from './random.ts';

let f: Fixture;
beforeAll(async () => {
  f = await deployFixture();
});
beforeEach(async () => {
  await f.reset();
});

const BUDGET = parseEther('1000'); // the fixture's round budget

/**
 * Registers a candidate for `round` as the coordinator does before posting its rewards (the
 * publisher's order), and returns what postRewardRoot names as paid for.
 */
async function ranRound(round: number): Promise<RewardedCandidate> {
  const model = candidate(GENESIS_HASH, 0x1000 + round, round);
  await f.as(f.accounts.coordinator).registerCandidate(model);
  return { contentHash: model.contentHash, contributorsRoot: model.contributorsRoot! };
}

function entries(): RewardEntry[] {
  const { alice, bob, eve, outsider } = f.accounts;
  return [
    { account: alice.address, amount: parseEther('100') },
    { account: bob.address, amount: parseEther('250') },
    { account: eve.address, amount: parseEther('50') },
    { account: outsider.address, amount: parseEther('1') },
    { account: eve.address, amount: parseEther('2') }, // a contributor may appear twice
  ];
}

describe('ContributionRewards', () => {
  it('posting mints the round total; valid claims pay the contributor, whoever sends them', async () => {
    const { as, client, accounts } = f;
    const tree = buildRewardTree(entries());
    const supplyBefore = await client.totalSupply();
    const receipt = await as(accounts.coordinator).postRewardRoot(
      1,
      tree.root,
      tree.total,
      await ranRound(1),
    );
    const posted = receipt.logs
      .map((log) => client.contracts.contributionRewards.interface.parseLog(log))
      .find((parsed) => parsed?.name === 'RewardRootPosted');
    expect(posted?.args.toArray()).toEqual([
      1n,
      candidate(GENESIS_HASH, 0x1001, 1).contentHash,
      '0x' + 'cd'.repeat(32),
      tree.root,
      tree.total,
    ]);
    expect(await client.rewardRound(1)).toEqual({
      root: tree.root,
      total: tree.total,
      claimed: 0n,
    });
    expect(await client.totalSupply()).toBe(supplyBefore + tree.total);
    const pool = f.addresses.contracts.contributionRewards;
    expect(await client.balanceOf(pool)).toBe(tree.total);

    const aliceBefore = await client.balanceOf(accounts.alice.address);
    const [aliceClaim, bobClaim, eveClaim, , eveSecond] = tree.claims;
    await as(accounts.alice).claimReward(1, aliceClaim!);
    await as(accounts.outsider).claimReward(1, bobClaim!); // relayed
    await as(accounts.eve).claimReward(1, eveClaim!);
    await as(accounts.eve).claimReward(1, eveSecond!);

    expect(await client.balanceOf(accounts.alice.address)).toBe(aliceBefore + parseEther('100'));
    expect(await client.balanceOf(accounts.eve.address)).toBe(parseEther('52'));
    expect(await client.balanceOf(pool)).toBe(tree.total - parseEther('402'));
    expect(await client.totalSupply()).toBe(supplyBefore + tree.total);
    expect(await client.isClaimed(1, 0)).toBe(true);
    expect(await client.isClaimed(1, 3)).toBe(false);
    expect((await client.rewardRound(1)).claimed).toBe(parseEther('402'));
    // Those who train gain a vote: alice delegated to herself, so her votes grew.
    expect(await client.votes(accounts.alice.address)).toBe(aliceBefore + parseEther('100'));
    // Unclaimed rewards do not vote: the pool never delegates.
    expect(await client.votes(pool)).toBe(0n);
  });

  it('a second claim of the same leaf reverts', async () => {
    const tree = buildRewardTree(entries());
    await f.as(f.accounts.coordinator).postRewardRoot(1, tree.root, tree.total, await ranRound(1));
    await f.as(f.accounts.alice).claimReward(1, tree.claims[0]!);
    await expectRevert(
      f.as(f.accounts.alice).claimReward(1, tree.claims[0]!),
      'ContributionRewardsAlreadyClaimed',
      [1n, 0n],
    );
  });

  it('a wrong proof, amount, account or round reverts', async () => {
    const { as, accounts } = f;
    const tree = buildRewardTree(entries());
    await as(accounts.coordinator).postRewardRoot(1, tree.root, tree.total, await ranRound(1));
    const claim = tree.claims[1]!;
    const mallory = as(accounts.outsider);
    const invalid = 'ContributionRewardsInvalidProof';
    await expectRevert(mallory.claimReward(1, { ...claim, amount: claim.amount + 1n }), invalid);
    await expectRevert(
      mallory.claimReward(1, { ...claim, account: accounts.outsider.address }),
      invalid,
    );
    await expectRevert(mallory.claimReward(1, { ...claim, index: 3 }), invalid);
    await expectRevert(mallory.claimReward(1, { ...claim, proof: tree.claims[0]!.proof }), invalid);
    await expectRevert(mallory.claimReward(1, { ...claim, proof: claim.proof.slice(1) }), invalid);
    await expectRevert(mallory.claimReward(2, claim), 'ContributionRewardsUnknownRound', [2n]);
  });

  it('a root above the round budget reverts; governance can raise the budget', async () => {
    const { as, accounts, client, pass } = f;
    const tree = buildRewardTree([{ account: accounts.alice.address, amount: BUDGET + 1n }]);
    const round = await ranRound(1);
    const supply = await client.totalSupply();
    await expectRevert(
      as(accounts.coordinator).postRewardRoot(1, tree.root, tree.total, round),
      'ContributionRewardsAboveBudget',
      [BUDGET + 1n, BUDGET],
    );
    expect(await client.totalSupply()).toBe(supply);
    await pass(
      await as(accounts.alice).propose([client.setRoundBudgetAction(BUDGET * 2n)], 'Bigger rounds'),
    );
    await as(accounts.coordinator).postRewardRoot(1, tree.root, tree.total, round);
    await as(accounts.alice).claimReward(1, tree.claims[0]!);
  });

  it('a round is posted once, with a non-zero root', async () => {
    const coordinator = f.as(f.accounts.coordinator);
    const tree = buildRewardTree(entries());
    const round = await ranRound(1);
    await coordinator.postRewardRoot(1, tree.root, tree.total, round);
    await expectRevert(
      coordinator.postRewardRoot(1, tree.root, tree.total, round),
      'ContributionRewardsRoundAlreadyPosted',
      [1n],
    );
    await expectRevert(
      coordinator.postRewardRoot(2, ZeroHash, 1n, await ranRound(2)),
      'ContributionRewardsZeroRoot',
    );
  });

  it('claims never pay more than the declared total, even from an inconsistent tree', async () => {
    const { as, accounts } = f;
    const tree = buildRewardTree(entries()); // 403 CMNS of leaves
    await as(accounts.coordinator).postRewardRoot(
      1,
      tree.root,
      parseEther('300'),
      await ranRound(1),
    );
    await as(accounts.bob).claimReward(1, tree.claims[1]!); // 250
    await expectRevert(
      as(accounts.alice).claimReward(1, tree.claims[0]!),
      'ContributionRewardsExceedsRoundTotal',
      [1n, parseEther('250'), parseEther('100'), parseEther('300')],
    );
    await as(accounts.eve).claimReward(1, tree.claims[2]!); // 50 fits exactly
  });

  it('governance can revoke the coordinator', async () => {
    const { as, accounts, client, pass } = f;
    await pass(
      await as(accounts.alice).propose(
        [client.coordinatorRoleAction('contributionRewards', accounts.coordinator.address, false)],
        'Revoke the coordinator',
      ),
    );
    const tree = buildRewardTree(entries());
    await expectRevert(
      as(accounts.coordinator).postRewardRoot(1, tree.root, tree.total, await ranRound(1)),
      'AccessControlUnauthorizedAccount',
    );
  });

  it('property: random trees — every leaf claims once, tampered claims fail', async () => {
    const rng = random(20240601);
    const { as, accounts, client } = f;
    const coordinator = as(accounts.coordinator);
    const relayer = as(accounts.outsider);
    for (let round = 1; round <= 12; round++) {
      const size = 1 + rng.int(round < 4 ? 3 : 40);
      const pool = Array.from({ length: 1 + rng.int(size) }, () => Wallet.createRandom().address);
      const leaves = Array.from({ length: size }, () => ({
        account: pool[rng.int(pool.length)]!,
        amount: 1n + rng.bigint(BUDGET / BigInt(size)),
      }));
      const tree = buildRewardTree(leaves);
      await coordinator.postRewardRoot(round, tree.root, tree.total, await ranRound(round));
      const expected = new Map<string, bigint>();
      const order = [...tree.claims].sort(() => rng.next() - 0.5);
      for (const claim of order) {
        if (rng.next() < 0.3 && tree.claims.length > 1) {
          const other = tree.claims[(claim.index + 1) % tree.claims.length]!;
          await expectRevert(
            relayer.claimReward(round, { ...claim, proof: other.proof, amount: claim.amount + 1n }),
            'ContributionRewardsInvalidProof',
          );
        }
        await relayer.claimReward(round, claim);
        expected.set(claim.account, (expected.get(claim.account) ?? 0n) + claim.amount);
      }
      const replay = tree.claims[rng.int(tree.claims.length)]!;
      await expectRevert(relayer.claimReward(round, replay), 'ContributionRewardsAlreadyClaimed', [
        BigInt(round),
        BigInt(replay.index),
      ]);
      expect((await client.rewardRound(round)).claimed).toBe(tree.total);
      for (const [account, amount] of expected) {
        expect(await client.balanceOf(account)).toBe(amount);
      }
      // Fresh accounts per round, so balances are per-round totals.
    }
  });
});

describe('rewards only for rounds that ran (issue 11 item 18)', () => {
  const CMNS = parseEther('1');

  it('refuses roots for never-run rounds: the coordinator cannot pay itself', async () => {
    const { as, accounts, client } = f;
    const coordinator = as(accounts.coordinator);
    const self = accounts.coordinator.address;
    const supply = await client.totalSupply();
    // The attack as reported: three round ids that never ran, each paying the coordinator the
    // whole budget, named after candidates nobody registered.
    for (const round of [101, 102, 103]) {
      const tree = buildRewardTree([{ account: self, amount: BUDGET }]);
      const invented = candidate(GENESIS_HASH, 0x2000 + round, round);
      await expectRevert(
        coordinator.postRewardRoot(round, tree.root, tree.total, {
          contentHash: invented.contentHash,
          contributorsRoot: invented.contributorsRoot!,
        }),
        'ContributionRewardsUnregisteredCandidate',
        [BigInt(round), invented.contentHash],
      );
      expect(await client.rewardRound(round)).toEqual({ root: ZeroHash, total: 0n, claimed: 0n });
    }
    expect(await client.balanceOf(self)).toBe(0n);
    expect(await client.totalSupply()).toBe(supply);
  });

  it("refuses another round's candidate, so one registration pays one round", async () => {
    const coordinator = f.as(f.accounts.coordinator);
    const round1 = await ranRound(1);
    const tree = buildRewardTree(entries());
    await expectRevert(
      coordinator.postRewardRoot(2, tree.root, tree.total, round1),
      'ContributionRewardsCandidateRoundMismatch',
      [2n, round1.contentHash, 1n],
    );
    await coordinator.postRewardRoot(1, tree.root, tree.total, round1);
    expect((await f.client.rewardRound(2)).root).toBe(ZeroHash);
  });

  it('refuses a contributors root that differs from the registered one', async () => {
    const coordinator = f.as(f.accounts.coordinator);
    const round = await ranRound(1);
    const other = '0x' + 'ee'.repeat(32);
    const tree = buildRewardTree(entries());
    await expectRevert(
      coordinator.postRewardRoot(1, tree.root, tree.total, { ...round, contributorsRoot: other }),
      'ContributionRewardsContributorsRootMismatch',
      [1n, round.contributorsRoot, other],
    );
    // Nothing was recorded: the honest root for the same round still posts and pays.
    await coordinator.postRewardRoot(1, tree.root, tree.total, round);
    await f.as(f.accounts.bob).claimReward(1, tree.claims[1]!);
    expect(await f.client.balanceOf(f.accounts.bob.address)).toBe(HOLDINGS.bob + 250n * CMNS);
  });

  it('refuses a candidate without contributors, genesis included', async () => {
    const coordinator = f.as(f.accounts.coordinator);
    const tree = buildRewardTree(entries());
    const noContributors = { ...candidate(GENESIS_HASH, 0x3004, 4), contributorsRoot: ZeroHash };
    await coordinator.registerCandidate(noContributors);
    for (const [round, hash] of [
      [0, GENESIS_HASH],
      [4, noContributors.contentHash],
    ] as const) {
      await expectRevert(
        coordinator.postRewardRoot(round, tree.root, tree.total, {
          contentHash: hash,
          contributorsRoot: ZeroHash,
        }),
        'ContributionRewardsNoContributors',
        [BigInt(round), hash],
      );
    }
  });

  it('refuses every account without the coordinator role, even for a registered round', async () => {
    const round = await ranRound(1);
    const tree = buildRewardTree(entries());
    const { deployer, alice, outsider } = f.accounts;
    for (const caller of [deployer, alice, outsider]) {
      await expectRevert(
        f.as(caller).postRewardRoot(1, tree.root, tree.total, round),
        'AccessControlUnauthorizedAccount',
      );
    }
    expect((await f.client.rewardRound(1)).root).toBe(ZeroHash);
  });
});
