// The demo's report: Markdown with the numbers (rounds, losses, ε, transactions, gas, timings)
// and two SVG charts beside it, validation loss per round and ε spent per round.
import { lineChartSvg } from '@commons/coordinator/lab';
import { formatEther } from 'ethers';
import type { FederationPolicy } from '@commons/chain';
import type { TxRecord } from './governance.ts';

export interface DemoRound {
  round: number;
  outcome: 'published' | 'failed';
  reason: string | null;
  accepted: number;
  baseModel: string;
  candidate: string | null;
  valLoss: number | null;
  valBpc: number | null;
  /** Cumulative ε of the candidate at the policy's δ. */
  epsilon: number | null;
  /** Proposal that activated the candidate, and its final state. */
  proposal: { id: string; state: string } | null;
  seconds: number;
}

export interface DemoMember {
  name: string;
  roles: string[];
  chars: number;
  contributes: boolean;
  /** The contributor's wallet (from the seed); '' for a member who only chats. */
  address: string;
  /** The model hash this member verified against the chain, and its reply. */
  verifiedHash: string | null;
  /** Only the version's adapter was downloaded (the member held its parent). */
  adapterOnly: boolean;
  reply: string | null;
  /** Tokens claimed (decimal wei), contributors only. */
  claimed: string | null;
}

export interface DemoReport {
  date: string;
  seed: number;
  backend: string;
  /**
   * The base the community started from (its hash is the genesis version's), where it was read
   * from, and how many adapters the active version has folded into it.
   */
  model: { params: number; genesis: string; source: string; adapters: number };
  policy: FederationPolicy;
  publishMarginBpc: number;
  initial: { valLoss: number; valBpc: number };
  rounds: DemoRound[];
  members: DemoMember[];
  prompt: string;
  activeModel: string;
  transactions: TxRecord[];
  seconds: Record<string, number>;
}

export function valLossSvg(report: DemoReport): string {
  let last = report.initial.valLoss;
  const points: [number, number][] = [[0, last]];
  for (const r of report.rounds) {
    if (r.valLoss !== null) last = r.valLoss;
    points.push([r.round, last]);
  }
  return lineChartSvg({
    title: 'Validation loss of the federated model',
    xLabel: 'round',
    yLabel: 'validation loss (nats/token)',
    series: [{ label: 'DP-FedAvg + SecAgg+', points }],
    integerX: true,
  });
}

export function epsilonSvg(report: DemoReport): string {
  const points: [number, number][] = [[0, 0]];
  for (const r of report.rounds) {
    if (r.epsilon !== null) points.push([r.round, r.epsilon]);
  }
  return lineChartSvg({
    title: `Privacy spent (ε at δ = ${report.policy.delta})`,
    xLabel: 'round',
    yLabel: 'ε of the published model',
    series: [{ label: `noise multiplier ${report.policy.noiseMultiplier}`, points }],
    integerX: true,
  });
}

export function reportMarkdown(
  report: DemoReport,
  charts: { valLoss: string; epsilon: string },
): string {
  const p = report.policy;
  const gas = report.transactions.reduce((sum, t) => sum + t.gasUsed, 0n);
  const lines = [
    '# Commons demo: the model-upgrade lifecycle',
    '',
    `${report.date}, seed ${report.seed}, tfjs backend ${report.backend}. ` +
      `A ${report.model.params.toLocaleString('en-US')}-parameter base model ` +
      `(\`${report.model.source}\`, genesis \`${short(report.model.genesis)}\`), ${report.members.length} members, ` +
      `${report.members.filter((m) => m.contributes).length} of them contributing. ` +
      (p.adapter.rule === 'full-delta'
        ? 'Rounds train the whole model.'
        : `Rounds train a LoRA adapter (${p.adapter.rule}, rank ${p.adapter.rank}, α ${p.adapter.alpha} on ` +
          `${p.adapter.targets.join(', ')}); each version is its parent with one adapter folded in, ` +
          `and the active one carries ${report.model.adapters} on top of the base.`),
    '',
    '## Policy (on chain, set at deployment)',
    '',
    `secure aggregation ${p.secureAggregation ? 'on' : 'off'}, noise multiplier ${p.noiseMultiplier}, ` +
      `clip norm ${p.clipNorm}, at least ${p.minClients} clients a round, δ ${p.delta}, ` +
      `ε budget ${p.epsilonBudget}. The coordinator publishes a candidate up to ` +
      `${report.publishMarginBpc} bits/char worse than its parent: DP noise on a federation ` +
      'this small costs accuracy, and the demo is about the lifecycle. With secure aggregation ' +
      'the noise is added by the contributors themselves, each its share from a CSPRNG that no ' +
      'seed reaches (a seeded share would be a known share), so validation losses differ a ' +
      'little between runs of one seed; the members, roles, wallets, model, sampling and ε repeat.',
    '',
    '## Rounds',
    '',
    `Before training: val loss ${report.initial.valLoss.toFixed(4)}, ${report.initial.valBpc.toFixed(4)} bits/char.`,
    '',
    '| round | outcome | updates | trained from | val loss | bits/char | ε | candidate | proposal | seconds |',
    '| ---: | --- | ---: | --- | ---: | ---: | ---: | --- | --- | ---: |',
    ...report.rounds.map(
      (r) =>
        `| ${r.round} | ${r.outcome}${r.reason ? ` (${r.reason})` : ''} | ${r.accepted} | \`${short(r.baseModel)}\` | ` +
        `${num(r.valLoss)} | ${num(r.valBpc)} | ${num(r.epsilon, 3)} | ` +
        `${r.candidate ? `\`${short(r.candidate)}\`` : '—'} | ` +
        `${r.proposal ? `${short(r.proposal.id)} ${r.proposal.state}` : '—'} | ${r.seconds.toFixed(1)} |`,
    ),
    '',
    `![validation loss](${charts.valLoss})`,
    '',
    `![epsilon](${charts.epsilon})`,
    '',
    '## Members',
    '',
    `Every member read the active model \`${short(report.activeModel)}\` from ModelRegistry with ` +
      'its base and adapters, got it from the coordinator (a contributor, who holds the parent, ' +
      'fetched only the adapter and folded it in), checked its sha256 against the chain and ' +
      `answered "${report.prompt}":`,
    '',
    '| member | roles (private data) | chars | contributes | verified | downloaded | reply | reward claimed |',
    '| --- | --- | ---: | --- | --- | --- | --- | ---: |',
    ...report.members.map(
      (m) =>
        `| ${m.name}${m.address ? ` \`${short(m.address)}\`` : ''} | ${m.roles.slice(0, 3).join(', ')}${m.roles.length > 3 ? ', …' : ''} | ` +
        `${m.chars} | ${m.contributes ? 'yes' : 'no'} | ${m.verifiedHash === report.activeModel ? 'yes' : 'NO'} | ` +
        `${m.adapterOnly ? 'the adapter' : 'the whole model'} | ` +
        `${JSON.stringify(m.reply ?? '').replace(/\|/g, '\\|')} | ${m.claimed === null ? '—' : formatEther(m.claimed)} |`,
    ),
    '',
    '## Transactions',
    '',
    `${report.transactions.length} transactions, ${gas.toLocaleString('en-US')} gas in all.`,
    '',
    '| what | hash | block | gas |',
    '| --- | --- | ---: | ---: |',
    ...report.transactions.map(
      (t) => `| ${t.what} | \`${t.hash}\` | ${t.block} | ${t.gasUsed.toLocaleString('en-US')} |`,
    ),
    '',
    '## Timings (seconds)',
    '',
    ...Object.entries(report.seconds).map(([k, v]) => `- ${k}: ${v.toFixed(1)}`),
    '',
  ];
  return lines.join('\n');
}

function short(hash: string): string {
  return `${hash.replace(/^0x/, '').slice(0, 12)}…`;
}

function num(value: number | null, digits = 4): string {
  return value === null ? '—' : value.toFixed(digits);
}
