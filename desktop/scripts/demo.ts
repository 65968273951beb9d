// npm run demo [-- --base MODEL --seed N --out FILE --members N --contributors N --rounds N
//                  --noise σ --clip C --lr η]
// The model-upgrade lifecycle, headless: federated rounds training a LoRA adapter (FFA-LoRA) with
// secure aggregation and DP on a base model (the genesis model, or any Llama-family model in
// your library), a vote to activate each candidate, every member verifying and running it,
// rewards claimed.
// Prints a summary and writes a Markdown report with charts (desktop/src/demo/demo.ts).
import { parseArgs } from 'node:util';
import { resolveBase } from '../src/demo/base.ts';
import { DEMO_DEFAULTS, runDemo } from '../src/demo/demo.ts';

const USAGE = `usage: npm run demo -- [options]

  --base MODEL       the model the community starts from: a library name (commons model list)
                     or a Hugging Face folder (default: the genesis model)
  --seed N           wallets, roles, sampling and DP noise (default ${DEMO_DEFAULTS.seed})
  --out FILE         the Markdown report (default .commons/demo/report.md)
  --members N        community size, member 0 is you (default ${DEMO_DEFAULTS.members})
  --contributors N   members who opt in to training, at least 3 (default ${DEMO_DEFAULTS.contributors})
  --rounds N         federated rounds (default ${DEMO_DEFAULTS.rounds})
  --noise SIGMA      the policy's DP noise multiplier (default ${DEMO_DEFAULTS.noiseMultiplier})
  --clip C           the policy's clip norm (default ${DEMO_DEFAULTS.clipNorm})
  --lr ETA           the contributors' learning rate (default ${DEMO_DEFAULTS.learningRate})`;

function whole(flag: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`--${flag} must be a whole number ≥ ${min}, got "${value}"`);
  }
  return n;
}

function positive(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`--${flag} must be a positive number, got "${value}"`);
  }
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      members: { type: 'string' },
      contributors: { type: 'string' },
      rounds: { type: 'string' },
      noise: { type: 'string' },
      clip: { type: 'string' },
      lr: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const { report, files } = await runDemo({
    ...DEMO_DEFAULTS,
    base: values.base === undefined ? DEMO_DEFAULTS.base : await resolveBase(values.base),
    seed: whole('seed', values.seed, DEMO_DEFAULTS.seed, 0),
    out: values.out ?? '.commons/demo/report.md',
    members: whole('members', values.members, DEMO_DEFAULTS.members, 3),
    contributors: whole('contributors', values.contributors, DEMO_DEFAULTS.contributors, 3),
    rounds: whole('rounds', values.rounds, DEMO_DEFAULTS.rounds, 1),
    noiseMultiplier: positive('noise', values.noise, DEMO_DEFAULTS.noiseMultiplier),
    clipNorm: positive('clip', values.clip, DEMO_DEFAULTS.clipNorm),
    learningRate: positive('lr', values.lr, DEMO_DEFAULTS.learningRate),
    log: (line) => console.log(line),
  });
  const gas = report.transactions.reduce((sum, t) => sum + t.gasUsed, 0n);
  const last = report.rounds.findLast((r) => r.candidate !== null);
  console.log(
    [
      '',
      `active model ${report.activeModel.slice(0, 12)}…, verified by all ${report.members.length} members`,
      last
        ? `last candidate: round ${last.round}, val loss ${last.valLoss?.toFixed(4)} ` +
          `(from ${report.initial.valLoss.toFixed(4)}), ${last.valBpc?.toFixed(4)} bits/char, ` +
          `ε ${last.epsilon?.toFixed(2) ?? '—'} at δ ${report.policy.delta}`
        : 'no round published a candidate',
      `${report.transactions.length} transactions, ${gas.toLocaleString('en-US')} gas`,
      `${report.seconds['total']!.toFixed(1)} s in all; report: ${files.join(', ')}`,
    ].join('\n'),
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
