// Every restricted function, called from an account that lacks the right, reverts with the
// expected custom error — including the deployer, which keeps no role after deployment.
import { ZeroHash, parseEther, type Contract, type Signer } from 'ethers';
import { beforeAll, describe, expect, it } from 'vitest';
import { COORDINATOR_ROLE, MINTER_ROLE, encodePolicy, encodeCandidate } from '@commons/chain';
import { DEFAULT_POLICY } from '../src/deploy.ts';
import { GENESIS_HASH, candidate, deployFixture, expectRevert, type Fixture } from './fixture.ts';

let f: Fixture;
let roles: Record<string, string>;
beforeAll(async () => {
  f = await deployFixture();
  const timelock = f.client.contracts.timelock;
  const role = async (name: string) => (await timelock.getFunction(name).staticCall()) as string;
  roles = {
    admin: ZeroHash,
    coordinator: COORDINATOR_ROLE,
    minter: MINTER_ROLE,
    proposer: await role('PROPOSER_ROLE'),
    canceller: await role('CANCELLER_ROLE'),
  };
});

/** Sends `method(...args)` on a Commons contract as `signer`. */
function send(
  key: keyof Fixture['client']['contracts'],
  signer: Signer,
  method: string,
  args: unknown[],
) {
  const contract = f.client.contracts[key].connect(signer) as Contract;
  return contract.getFunction(method).send(...args);
}

type Case = {
  contract: keyof Fixture['client']['contracts'];
  method: string;
  args: () => unknown[];
  /** Accounts that must be refused, and the role the error names. */
  callers: () => Signer[];
  role?: string;
  error: string;
};

const wrongAccounts = () => [f.accounts.deployer, f.accounts.outsider, f.accounts.alice];

const cases: Case[] = [
  // CommonsToken
  {
    contract: 'token',
    method: 'mint',
    args: () => [f.accounts.outsider.address, 1n],
    callers: () => [...wrongAccounts(), f.accounts.coordinator],
    role: 'minter',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'token',
    method: 'grantRole',
    args: () => [MINTER_ROLE, f.accounts.outsider.address],
    callers: wrongAccounts,
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'token',
    method: 'revokeRole',
    args: () => [MINTER_ROLE, f.addresses.contracts.contributionRewards],
    callers: wrongAccounts,
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  // ModelRegistry
  {
    contract: 'modelRegistry',
    method: 'registerCandidate',
    args: () => [encodeCandidate(candidate(GENESIS_HASH, 5))],
    callers: wrongAccounts,
    role: 'coordinator',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'modelRegistry',
    method: 'activate',
    args: () => [GENESIS_HASH],
    callers: () => [...wrongAccounts(), f.accounts.coordinator],
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'modelRegistry',
    method: 'grantRole',
    args: () => [COORDINATOR_ROLE, f.accounts.outsider.address],
    callers: () => [...wrongAccounts(), f.accounts.coordinator],
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'modelRegistry',
    method: 'revokeRole',
    args: () => [COORDINATOR_ROLE, f.accounts.coordinator.address],
    callers: wrongAccounts,
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'modelRegistry',
    method: 'recordBaseModel',
    args: () => ['0x' + '5a'.repeat(32), 'hf-folder', 'apache-2.0', 'HuggingFaceTB/SmolLM2'],
    callers: () => [...wrongAccounts(), f.accounts.coordinator],
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'modelRegistry',
    method: 'setBaseModel',
    args: () => ['0x' + '5a'.repeat(32)],
    callers: () => [...wrongAccounts(), f.accounts.coordinator],
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  // FederationPolicy
  {
    contract: 'federationPolicy',
    method: 'setPolicy',
    args: () => [encodePolicy(DEFAULT_POLICY)],
    callers: () => [...wrongAccounts(), f.accounts.coordinator],
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'federationPolicy',
    method: 'grantRole',
    args: () => [ZeroHash, f.accounts.outsider.address],
    callers: wrongAccounts,
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  // ContributionRewards
  {
    contract: 'contributionRewards',
    method: 'postRoot',
    args: () => [1, '0x' + '11'.repeat(32), '0x' + 'cd'.repeat(32), '0x' + '11'.repeat(32), 1n],
    callers: wrongAccounts,
    role: 'coordinator',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'contributionRewards',
    method: 'setRoundBudget',
    args: () => [parseEther('1000000')],
    callers: () => [...wrongAccounts(), f.accounts.coordinator],
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'contributionRewards',
    method: 'grantRole',
    args: () => [COORDINATOR_ROLE, f.accounts.outsider.address],
    callers: () => [...wrongAccounts(), f.accounts.coordinator],
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'contributionRewards',
    method: 'revokeRole',
    args: () => [COORDINATOR_ROLE, f.accounts.coordinator.address],
    callers: wrongAccounts,
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  // CommonsTimelock: only the governor proposes and cancels; only the timelock itself administers.
  {
    contract: 'timelock',
    method: 'schedule',
    args: () => [f.addresses.contracts.modelRegistry, 0n, '0x', ZeroHash, ZeroHash, 3600n],
    callers: wrongAccounts,
    role: 'proposer',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'timelock',
    method: 'scheduleBatch',
    args: () => [[f.addresses.contracts.modelRegistry], [0n], ['0x'], ZeroHash, ZeroHash, 3600n],
    callers: wrongAccounts,
    role: 'proposer',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'timelock',
    method: 'cancel',
    args: () => [ZeroHash],
    callers: wrongAccounts,
    role: 'canceller',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'timelock',
    method: 'grantRole',
    args: () => [roles.proposer, f.accounts.outsider.address],
    callers: wrongAccounts,
    role: 'admin',
    error: 'AccessControlUnauthorizedAccount',
  },
  {
    contract: 'timelock',
    method: 'updateDelay',
    args: () => [0n],
    callers: wrongAccounts,
    error: 'TimelockUnauthorizedCaller',
  },
  // CommonsGovernor: settings change only by executed proposals.
  {
    contract: 'governor',
    method: 'setVotingDelay',
    args: () => [0],
    callers: wrongAccounts,
    error: 'GovernorOnlyExecutor',
  },
  {
    contract: 'governor',
    method: 'setVotingPeriod',
    args: () => [1],
    callers: wrongAccounts,
    error: 'GovernorOnlyExecutor',
  },
  {
    contract: 'governor',
    method: 'setProposalThreshold',
    args: () => [0n],
    callers: wrongAccounts,
    error: 'GovernorOnlyExecutor',
  },
  {
    contract: 'governor',
    method: 'updateQuorumNumerator',
    args: () => [1n],
    callers: wrongAccounts,
    error: 'GovernorOnlyExecutor',
  },
  {
    contract: 'governor',
    method: 'setLateQuorumVoteExtension',
    args: () => [0],
    callers: wrongAccounts,
    error: 'GovernorOnlyExecutor',
  },
  {
    contract: 'governor',
    method: 'updateTimelock',
    args: () => [f.accounts.outsider.address],
    callers: wrongAccounts,
    error: 'GovernorOnlyExecutor',
  },
  {
    contract: 'governor',
    method: 'relay',
    args: () => [f.addresses.contracts.token, 0n, '0x'],
    callers: wrongAccounts,
    error: 'GovernorOnlyExecutor',
  },
];

describe('restricted functions refuse the wrong account', () => {
  it.each(cases.map((c) => [`${c.contract}.${c.method}`, c] as const))('%s', async (_, c) => {
    for (const caller of c.callers()) {
      const account = await caller.getAddress();
      const expectedArgs = c.role ? [account, roles[c.role]] : [account];
      await expectRevert(send(c.contract, caller, c.method, c.args()), c.error, expectedArgs);
    }
  });
});

describe('open or proposer-only functions', () => {
  it('anyone may execute on the timelock, but only operations that are ready', async () => {
    const timelock = f.client.contracts.timelock;
    expect(
      await timelock
        .getFunction('hasRole')
        .staticCall(
          await timelock.getFunction('EXECUTOR_ROLE').staticCall(),
          '0x' + '00'.repeat(20),
        ),
    ).toBe(true);
    await expectRevert(
      send('timelock', f.accounts.outsider, 'execute', [
        f.addresses.contracts.token,
        0n,
        '0x',
        ZeroHash,
        ZeroHash,
      ]),
      'TimelockUnexpectedOperationState',
    );
  });

  it('only the proposer may cancel a pending proposal', async () => {
    const id = await f.as(f.accounts.alice).proposeActivateModel(GENESIS_HASH, 'to cancel');
    const { targets, values, calldatas } = await (async () => {
      const p = await f.client.proposal(id);
      return {
        targets: p.actions.map((a) => a.target),
        values: p.actions.map((a) => a.value),
        calldatas: p.actions.map((a) => a.calldata),
      };
    })();
    const descriptionHash = (await f.client.proposal(id)).descriptionHash;
    await expectRevert(
      send('governor', f.accounts.bob, 'cancel', [targets, values, calldatas, descriptionHash]),
      'GovernorUnableToCancel',
      [id, f.accounts.bob.address],
    );
    await send('governor', f.accounts.alice, 'cancel', [
      targets,
      values,
      calldatas,
      descriptionHash,
    ]);
    expect((await f.client.proposal(id)).state).toBe('canceled');
  });
});
