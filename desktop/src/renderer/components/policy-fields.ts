// The federation policy's fields as members read them: a label, what each one means, and its
// value in words. The Federation screen shows the policy in force with them, and the
// Governance screen shows proposed changes and its proposal form with the same words.
import type { FederationPolicy } from '../../api/governance.ts';
import { formatNumber } from '../format.ts';

export const POLICY_FIELDS: { key: keyof FederationPolicy; label: string; explain: string }[] = [
  {
    key: 'epsilonBudget',
    label: 'ε budget',
    explain: 'the most privacy loss you can ever be charged',
  },
  { key: 'delta', label: 'δ', explain: 'the chance the ε guarantee does not hold' },
  { key: 'clipNorm', label: 'Clip norm', explain: 'how much any one update can move the model' },
  {
    key: 'clipTargetQuantile',
    label: 'Adaptive clipping',
    explain: 'the share of updates the clip norm adapts to leave unclipped',
  },
  {
    key: 'noiseMultiplier',
    label: 'Noise multiplier',
    explain: 'noise added to the sum, × clip norm',
  },
  {
    key: 'secureAggregation',
    label: 'Secure aggregation',
    explain: 'when on, the coordinator sees only the sum of updates',
  },
  {
    key: 'secAggNumShares',
    label: 'SecAgg+ neighbours',
    explain: 'members each update is masked with (you included)',
  },
  {
    key: 'secAggThreshold',
    label: 'SecAgg+ threshold',
    explain: 'share of neighbours needed to unmask a member who dropped out',
  },
  { key: 'minClients', label: 'Minimum clients', explain: 'a round needs at least this many' },
  { key: 'maxClients', label: 'Maximum clients', explain: 'invited per round' },
  { key: 'sampleRate', label: 'Sample rate', explain: 'share of members invited per round' },
  { key: 'aggregationRule', label: 'Aggregation', explain: 'how updates are combined' },
  {
    key: 'adapter',
    label: 'Adapter',
    explain:
      'what a round trains: the whole model, or a LoRA adapter (FFA-LoRA freezes A, so the average is exact)',
  },
  {
    key: 'maxExamplesPerUpdate',
    label: 'Weight cap',
    explain: 'most examples one update counts for when no noise is added',
  },
  { key: 'localEpochs', label: 'Local epochs', explain: 'passes over your data per round' },
  { key: 'learningRate', label: 'Learning rate', explain: 'step size of local training' },
  { key: 'roundDeadlineSeconds', label: 'Round deadline', explain: 'seconds to upload' },
];

/** The label a policy field goes by on screen. */
export function policyLabel(field: keyof FederationPolicy): string {
  return POLICY_FIELDS.find((f) => f.key === field)?.label ?? field;
}

/** A policy value in words: the fields where 0 means "off" or "automatic" say so. */
export function policyValue(
  field: keyof FederationPolicy,
  value: FederationPolicy[keyof FederationPolicy],
): string {
  if (field === 'clipTargetQuantile' && value === 0) return 'off (fixed clip norm)';
  if (field === 'clipTargetQuantile' && typeof value === 'number')
    return `on, ${formatNumber(value * 100, 3)}% unclipped`;
  if (field === 'secAggNumShares' && value === 0) return 'automatic';
  if (field === 'secAggThreshold' && typeof value === 'number')
    return `${formatNumber(value * 100, 3)}%`;
  if (typeof value === 'object') {
    if (value.rule === 'full-delta') return 'the whole model (full delta)';
    const rule = value.rule === 'ffa-lora' ? 'FFA-LoRA' : 'LoRA-FedAvg';
    return `${rule}, rank ${value.rank}, α ${formatNumber(value.alpha, 4)} on ${value.targets.join(', ')}`;
  }
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'number') return formatNumber(value, 4);
  return String(value);
}
