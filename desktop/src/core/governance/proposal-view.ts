// Proposals as the renderer shows them: bigints as decimal strings, and every action decoded
// into what it means (which model becomes active, with its lineage and metrics; which policy
// fields change, from what to what).
import {
  type CommonsClient,
  type Proposal,
  type ProposalAction,
  decodePolicy,
  type FederationPolicy,
  type PolicyStruct,
} from '@commons/chain';
import type { ActionView, PolicyFieldChange, ProposalView } from '../../api/governance.ts';
import { epsilonOf } from '../../api/schemas.ts';

export function policyDiff(from: FederationPolicy, to: FederationPolicy): PolicyFieldChange[] {
  const changes: PolicyFieldChange[] = [];
  for (const field of Object.keys(to) as (keyof FederationPolicy)[]) {
    // The adapter is an object: compared by value.
    if (JSON.stringify(from[field]) !== JSON.stringify(to[field])) {
      changes.push({ field, from: from[field], to: to[field] });
    }
  }
  return changes;
}

export async function describeAction(
  chain: CommonsClient,
  action: ProposalAction,
  policyNow: FederationPolicy,
): Promise<ActionView> {
  const decoded = chain.decodeAction(action);
  if (decoded?.contract === 'modelRegistry' && decoded.function === 'activate') {
    const contentHash = String(decoded.args[0]);
    let version = null;
    try {
      const [v, lineage] = await Promise.all([
        chain.modelVersion(contentHash),
        chain.lineage(contentHash),
      ]);
      version = {
        contentHash: v.contentHash,
        parentHash: v.parentHash,
        roundId: v.roundId,
        valBpc: v.valBpc,
        epsilon: epsilonOf(v.epsilon),
        delta: v.delta,
        uri: v.uri,
        lineage,
      };
    } catch {
      // Not registered (the proposal would revert on execution): shown without details.
    }
    return { kind: 'activate-model', contentHash, version };
  }
  if (decoded?.contract === 'modelRegistry' && decoded.function === 'recordBaseModel') {
    const [identity, format, licence, name] = decoded.args.map(String) as [
      string,
      string,
      string,
      string,
    ];
    return { kind: 'record-base-model', identity, format, licence, name };
  }
  if (decoded?.contract === 'modelRegistry' && decoded.function === 'setBaseModel') {
    const identity = String(decoded.args[0]);
    // Not recorded yet when the same proposal records it first (its name is in that action).
    const name = await chain
      .baseModelRecord(identity)
      .then((r) => r.name)
      .catch(() => null);
    return { kind: 'set-base-model', identity, name };
  }
  if (decoded?.contract === 'federationPolicy' && decoded.function === 'setPolicy') {
    const iface = chain.contracts.federationPolicy.interface;
    const struct = iface.decodeFunctionData('setPolicy', action.calldata)[0] as {
      toObject(): PolicyStruct;
    };
    const policy = decodePolicy(struct.toObject());
    return { kind: 'set-policy', changes: policyDiff(policyNow, policy), policy };
  }
  return {
    kind: 'other',
    target: action.target,
    contract: decoded?.contract ?? null,
    function: decoded?.function ?? null,
    args: (decoded?.args ?? []).map((a) =>
      typeof a === 'object' ? JSON.stringify(a, bigintText) : String(a),
    ),
    value: action.value.toString(),
    calldata: action.calldata,
  };
}

function bigintText(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

export async function proposalView(
  chain: CommonsClient,
  p: Proposal,
  policyNow: FederationPolicy,
  voter: string | null,
): Promise<ProposalView> {
  const [actions, hasVoted] = await Promise.all([
    Promise.all(p.actions.map((a) => describeAction(chain, a, policyNow))),
    voter ? chain.hasVoted(p.id, voter) : Promise.resolve(null),
  ]);
  return {
    id: p.id.toString(),
    proposer: p.proposer,
    description: p.description,
    state: p.state,
    snapshot: p.snapshot,
    deadline: p.deadline,
    eta: p.eta === 0 ? null : p.eta,
    votes: {
      for: p.votes.for.toString(),
      against: p.votes.against.toString(),
      abstain: p.votes.abstain.toString(),
    },
    quorum: p.quorum === null ? null : p.quorum.toString(),
    actions,
    hasVoted,
  };
}
