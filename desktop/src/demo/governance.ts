// Governance as token holders do it, on a local devnet: a proposal, votes (some cast directly,
// some signed off-chain and relayed by another account, as a wallet without gas would), the
// voting period and the timelock passed by moving the devnet's clock, then queue and execute.
// Every transaction is recorded with its hash and gas, for the demo's report and the tests.
import type { ContractTransactionReceipt, ContractTransactionResponse } from 'ethers';
import type {
  CommonsClient,
  ProposalAction,
  ProposalState,
  ProposalVotes,
  Support,
} from '@commons/chain';

export interface TxRecord {
  what: string;
  hash: string;
  gasUsed: bigint;
  block: number;
}

export class TxLog {
  readonly entries: TxRecord[] = [];

  add(what: string, receipt: ContractTransactionReceipt): ContractTransactionReceipt {
    this.entries.push({
      what,
      hash: receipt.hash,
      gasUsed: receipt.gasUsed,
      block: receipt.blockNumber,
    });
    return receipt;
  }

  get totalGas(): bigint {
    return this.entries.reduce((sum, e) => sum + e.gasUsed, 0n);
  }
}

/** Moves the devnet's clock forward by `seconds` and mines a block at the new time. */
export async function advanceDevnet(rpcUrl: string, seconds: number): Promise<void> {
  await devnetRpc(rpcUrl, 'evm_increaseTime', [seconds]);
  await devnetRpc(rpcUrl, 'evm_mine', []);
}

async function devnetRpc(rpcUrl: string, method: string, params: unknown[]): Promise<void> {
  const response = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = (await response.json()) as { error?: { message: string } };
  if (body.error) throw new Error(`${method} on ${rpcUrl}: ${body.error.message}`);
}

export interface Ballot {
  voter: CommonsClient;
  support: Support;
  /** Signed by `voter`, sent (and paid for) by this client instead. */
  relayedBy?: CommonsClient;
}

export interface ProposalRun {
  proposalId: bigint;
  /** The state once voting is over (and, if it succeeded, after queue and execute). */
  state: ProposalState;
  votes: ProposalVotes;
  /** Votes the proposal needed (for + abstain). */
  quorum: bigint | null;
}

/**
 * Proposes `actions`, casts `ballots` once voting opens, waits out the voting period on the
 * devnet's clock and, if the proposal succeeded, queues it, waits out the timelock and
 * executes it. A defeated proposal is left as it is: there is nothing to queue.
 */
export async function runProposal(options: {
  rpcUrl: string;
  proposer: CommonsClient;
  actions: ProposalAction[];
  description: string;
  ballots: Ballot[];
  txs: TxLog;
}): Promise<ProposalRun> {
  const { rpcUrl, proposer, txs } = options;
  const settings = await proposer.governanceSettings();
  const proposalId = await propose(proposer, options.actions, options.description, txs);
  await advanceDevnet(rpcUrl, settings.votingDelay + 1);
  for (const ballot of options.ballots) {
    const voter = await signerAddress(ballot.voter);
    if (ballot.relayedBy) {
      const signed = await ballot.voter.signVote(proposalId, ballot.support);
      txs.add(
        `vote ${ballot.support}, signed by ${voter}, relayed by ${await signerAddress(ballot.relayedBy)}`,
        await ballot.relayedBy.castVoteBySig(signed),
      );
    } else {
      txs.add(
        `vote ${ballot.support} by ${voter}`,
        await ballot.voter.castVote(proposalId, ballot.support),
      );
    }
  }
  await advanceDevnet(rpcUrl, settings.votingPeriod + 1);
  let proposal = await proposer.proposal(proposalId);
  if (proposal.state === 'succeeded') {
    txs.add('queue in the timelock', await proposer.queue(proposalId));
    await advanceDevnet(rpcUrl, settings.timelockDelay + 1);
    txs.add('execute', await proposer.execute(proposalId));
    proposal = await proposer.proposal(proposalId);
  }
  return { proposalId, state: proposal.state, votes: proposal.votes, quorum: proposal.quorum };
}

/** Governor.propose, keeping the receipt (CommonsClient.propose returns only the id). */
async function propose(
  client: CommonsClient,
  actions: ProposalAction[],
  description: string,
  txs: TxLog,
): Promise<bigint> {
  const governor = client.contracts.governor;
  const response = (await governor.getFunction('propose').send(
    actions.map((a) => a.target),
    actions.map((a) => a.value),
    actions.map((a) => a.calldata),
    description,
  )) as ContractTransactionResponse;
  const receipt = await response.wait();
  if (!receipt) throw new Error(`propose "${description}": the transaction was dropped`);
  txs.add(`propose: ${description}`, receipt);
  for (const log of receipt.logs) {
    const parsed = governor.interface.parseLog(log);
    if (parsed?.name === 'ProposalCreated') return parsed.args[0] as bigint;
  }
  throw new Error(`propose "${description}": no ProposalCreated event in the receipt`);
}

async function signerAddress(client: CommonsClient): Promise<string> {
  if (!client.signer) throw new Error('a read-only CommonsClient cannot vote or relay votes');
  return client.signer.getAddress();
}
