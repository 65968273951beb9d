// npm run bench -w contracts [-- --json]: gas of each main operation on the in-process chain.
// Prints a table (or, with --json, one JSON object { "gas": { operation: n } }) and writes
// bench/results/gas.json.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseEther, type ContractTransactionReceipt, type Signer } from 'ethers';
import { CommonsClient, buildRewardTree } from '@commons/chain';
import { DEFAULT_POLICY, deployCommons } from '../src/deploy.ts';
import { readCompiledBytecode } from '../src/generated.ts';
import { compile, contractsRoot } from '../src/hardhat.ts';

const json = process.argv.includes('--json');
const hre = await compile();
const { ethers } = await hre.network.create();
const signers = await ethers.getSigners();
const [deployer, coordinator, alice, bob, carol, dave, relayer] = signers;
if (!deployer || !coordinator || !alice || !bob || !carol || !dave || !relayer) {
  throw new Error('need 7 accounts');
}
const governance = {
  votingDelay: 10,
  votingPeriod: 100,
  quorumPercent: 4,
  timelockDelay: 50,
  voteExtension: 30,
  proposalThreshold: 0n,
};

const gas: Record<string, number> = {};
const record = (name: string, receipt: ContractTransactionReceipt) => {
  gas[name] = Number(receipt.gasUsed);
};
const advance = async (seconds: number) => {
  await ethers.provider.send('evm_increaseTime', [seconds]);
  await ethers.provider.send('evm_mine', []);
};

// Deployment: the sum over every transaction deployCommons sends.
const firstBlock = await ethers.provider.getBlockNumber();
const addresses = await deployCommons(deployer, {
  genesis: { hash: '0x' + 'ab'.repeat(32), uri: 'sha256:genesis' },
  governance,
  coordinator: await coordinator.getAddress(),
  distribution: [
    { account: await alice.getAddress(), amount: parseEther('400000') },
    { account: await bob.getAddress(), amount: parseEther('300000') },
    { account: await carol.getAddress(), amount: parseEther('200000') },
    { account: await dave.getAddress(), amount: parseEther('100000') },
  ],
  bytecode: await readCompiledBytecode(hre),
});
let deployGas = 0;
for (let n = firstBlock + 1; n <= (await ethers.provider.getBlockNumber()); n++) {
  const block = await ethers.provider.getBlock(n);
  for (const hash of block?.transactions ?? []) {
    deployGas += Number((await ethers.provider.getTransactionReceipt(hash))?.gasUsed ?? 0);
  }
}
gas['deploy (whole system, 12 txs)'] = deployGas;

const client = new CommonsClient(deployer, addresses);
const as = (signer: Signer) => client.withSigner(signer);
record('delegate', await as(alice).delegate());
await as(bob).delegate();
await as(carol).delegate();
await as(dave).delegate();

record(
  'registerCandidate',
  await as(coordinator).registerCandidate({
    contentHash: '11'.repeat(32),
    parentHash: 'ab'.repeat(32),
    uri: 'sha256:' + '11'.repeat(32),
    roundId: 1,
    contributorsRoot: '0x' + 'cd'.repeat(32),
    valBpc: 2.1,
    epsilon: 0.8,
    delta: 1e-5,
  }),
);

// A model upgrade: propose, vote three ways, queue, execute (the execute runs activate()).
const proposer = as(alice);
async function proposeAndMeasure(
  kind: string,
  action: ReturnType<typeof client.activateModelAction>,
) {
  const proposeTx = await proposer.contracts.governor
    .getFunction('propose')
    .send([action.target], [action.value], [action.calldata], `bench ${kind}`);
  const proposeReceipt = (await proposeTx.wait()) as ContractTransactionReceipt;
  const id = (await proposer.listProposals()).at(-1)!.id;
  return { id, proposeReceipt };
}
const upgrade = await proposeAndMeasure('upgrade', client.activateModelAction('11'.repeat(32)));
record('propose', upgrade.proposeReceipt);
await advance(governance.votingDelay + 1);
// The first vote on a proposal that reaches quorum also pays for the first tally slot and the
// late-quorum deadline stamp; later votes do not.
record('castVote (first vote, reaches quorum)', await as(dave).castVote(upgrade.id, 'for'));
record('castVote', await as(alice).castVote(upgrade.id, 'for'));
record('castVoteWithReason', await as(bob).castVote(upgrade.id, 'for', 'lower validation bpc'));
record(
  'castVoteBySig',
  await as(relayer).castVoteBySig(await as(carol).signVote(upgrade.id, 'for')),
);
await advance(governance.votingPeriod + 1);
record('queue', await as(relayer).queue(upgrade.id));
await advance(governance.timelockDelay + 1);
record('execute (activate model)', await as(relayer).execute(upgrade.id));

const policyChange = await proposeAndMeasure(
  'policy',
  client.setPolicyAction({ ...DEFAULT_POLICY, clipNorm: 0.8 }),
);
await advance(governance.votingDelay + 1);
await as(alice).castVote(policyChange.id, 'for');
await advance(governance.votingPeriod + 1);
await as(relayer).queue(policyChange.id);
await advance(governance.timelockDelay + 1);
record('execute (policy change)', await as(relayer).execute(policyChange.id));

// A base model: one proposal records it and makes it the community's (two calls in the timelock).
const baseModelId = await proposer.proposeBaseModel({
  identity: '5a'.repeat(32),
  format: 'hf-folder',
  licence: 'apache-2.0',
  name: 'HuggingFaceTB/SmolLM2-135M-Instruct',
});
await advance(governance.votingDelay + 1);
await as(alice).castVote(baseModelId, 'for');
await advance(governance.votingPeriod + 1);
await as(relayer).queue(baseModelId);
await advance(governance.timelockDelay + 1);
record('execute (record + select base model)', await as(relayer).execute(baseModelId));

// Rewards: 64 contributors, fresh accounts (their first tokens) and existing holders.
const fresh = Array.from({ length: 62 }, () => ethers.Wallet.createRandom().address);
const entries = [
  { account: await alice.getAddress(), amount: parseEther('5') },
  { account: await bob.getAddress(), amount: parseEther('5') },
  ...fresh.map((account) => ({ account, amount: parseEther('1') })),
];
const tree = buildRewardTree(entries);
// Round 1's candidate was registered above (the registry check is part of postRoot's cost).
record(
  'postRoot',
  await as(coordinator).postRewardRoot(1, tree.root, tree.total, {
    contentHash: '11'.repeat(32),
    contributorsRoot: '0x' + 'cd'.repeat(32),
  }),
);
record('claim (first of round, new holder)', await as(relayer).claimReward(1, tree.claims[2]!));
record('claim (new holder)', await as(relayer).claimReward(1, tree.claims[3]!));
record('claim (delegated holder)', await as(relayer).claimReward(1, tree.claims[0]!));

const width = Math.max(...Object.keys(gas).map((k) => k.length));
const outFile = path.join(contractsRoot, 'bench', 'results', 'gas.json');
await mkdir(path.dirname(outFile), { recursive: true });
await writeFile(outFile, JSON.stringify({ gas }, null, 2) + '\n');
if (json) {
  console.log(JSON.stringify({ gas }));
} else {
  console.log(`${'operation'.padEnd(width)}  gas`);
  console.log(`${'-'.repeat(width)}  ${'-'.repeat(9)}`);
  for (const [name, value] of Object.entries(gas)) {
    console.log(`${name.padEnd(width)}  ${value.toLocaleString('en-US').padStart(9)}`);
  }
  console.log(
    `\ngoals: castVote <= 90,000, claim <= 80,000; written to ${path.relative(process.cwd(), outFile)}`,
  );
}
