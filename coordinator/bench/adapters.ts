// Federated LoRA (issue 13): what one contributor uploads per round at a real model's shape, an
// adapter against a full-model delta, and how many rounds each rule needs on non-IID Shakespeare.
//
// Bytes are the update codec's own frame sizes (fp32, the encoding that carries DP noise
// unrounded) for SmolLM2-135M's shape: FFA-LoRA sends B alone, LoRA-FedAvg sends A and B, full
// FedAvg sends every weight. Rank 32 on q_proj and v_proj, FlowerTune's LoRA setting.
//
// Convergence runs the three rules in process (lab/simulation/adapter-rounds.ts) from the genesis
// model, on text it never saw: the held-out last 10% of tinyshakespeare (other plays, other
// characters), its first 80% split by role over the clients (non-IID) and its last 20% scoring
// each round. That is what a community fine-tunes for: its own text, which the base model has not
// read. (From genesis on the text it was trained on, no rule gains: genesis already overfits it.)
// One target for all, 7% below the genesis model's loss on the scoring text; each rule runs to it
// or to the cap. Full FedAvg trains every weight, so it may well need the fewest rounds; what the
// adapters buy is the bytes.
import {
  encodeTensors,
  LoraAdapter,
  type LoraConfig,
  modelConfigFromHf,
  type NamedTensors,
  parameterShapes,
  readCheckpoint,
  readCorpus,
  REAL_SHAPES,
  ChatTokenizer,
  selectBackend,
  splitText,
} from '@commons/shared/engine';
import { GENESIS_DIR } from '../src/config.ts';
import { CandidateEvaluator } from '../src/rounds/evaluator.ts';
import { ADAPTER_RULES, runAdapterRounds } from '../lab/simulation/adapter-rounds.ts';
import { assignRoles, parseRoles } from '../lab/simulation/roles.ts';
import { textTable } from './table.ts';

export const BENCH_LORA: LoraConfig = { rank: 32, alpha: 64, targets: ['q_proj', 'v_proj'] };

export interface AdapterBytesRow {
  method: string;
  parameters: number;
  bytes: number;
}

export interface AdapterBenchResult {
  shape: string;
  lora: LoraConfig;
  bytes: AdapterBytesRow[];
  adapterBytesPerRound: number;
  fullDeltaBytesPerRound: number;
  /** fullDeltaBytesPerRound / adapterBytesPerRound (goal ≥ 50). */
  ratio: number;
  convergence: {
    clients: number;
    localSteps: number;
    learningRates: Record<string, number>;
    initialLoss: number;
    targetLoss: number;
    cap: number;
    rows: { method: string; rounds: number | null; losses: number[]; bytesPerClient: number }[];
  };
}

/** Zero tensors of these shapes (the frame's size does not depend on the values). */
function zeros(shapes: Map<string, number[]>): NamedTensors {
  const out: NamedTensors = new Map();
  for (const [name, shape] of shapes) {
    out.set(name, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  }
  return out;
}

export async function benchAdapters(options: {
  log: (line: string) => void;
  clients?: number;
  localSteps?: number;
  cap?: number;
}): Promise<AdapterBenchResult> {
  const { log } = options;
  const shape = 'smollm2-135m';
  const config = modelConfigFromHf(REAL_SHAPES[shape]);
  const adapterShapes = LoraAdapter.shapes(config, BENCH_LORA);
  const bOnly = new Map([...adapterShapes].filter(([name]) => name.endsWith('lora_B.weight')));
  const frameBytes = (shapes: Map<string, number[]>) =>
    encodeTensors(zeros(shapes), 'fp32').byteLength;
  const count = (shapes: Map<string, number[]>) =>
    [...shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  const full = parameterShapes(config);
  log(`  frames at ${shape}: B only, A and B, every weight (${count(full).toLocaleString()}) …`);
  const bytes: AdapterBytesRow[] = [
    { method: 'ffa-lora', parameters: count(bOnly), bytes: frameBytes(bOnly) },
    { method: 'lora-fedavg', parameters: count(adapterShapes), bytes: frameBytes(adapterShapes) },
    { method: 'full-fedavg', parameters: count(full), bytes: frameBytes(full) },
  ];
  const adapterBytesPerRound = bytes[0]!.bytes;
  const fullDeltaBytesPerRound = bytes[2]!.bytes;

  // Convergence from the genesis model, each client holding its own roles (wasm: tfjs's
  // default in Node is the plain-JS cpu backend, ~30× slower).
  const backend = await selectBackend();
  log(`  backend ${backend.backend}`);
  const clients = options.clients ?? 4;
  const localSteps = options.localSteps ?? 8;
  const cap = options.cap ?? 10;
  const { manifest, tensors } = await readCheckpoint(GENESIS_DIR);
  const tokenizer = ChatTokenizer.fromJSON(manifest.tokenizer);
  const { val: unseen } = splitText(readCorpus());
  const cut = Math.floor(unseen.length * 0.8);
  const data = assignRoles(parseRoles(unseen.slice(0, cut)), clients, 1).map((shard) =>
    Int32Array.from(tokenizer.encodeText(shard.text)),
  );
  const evaluator = new CandidateEvaluator({ text: unseen.slice(cut), maxChars: 8000 });
  const initialLoss = evaluator.evaluate(manifest, tensors).loss;
  const targetLoss = initialLoss * 0.93;
  // Adapters take a larger step than full fine-tuning, as in the LoRA papers.
  const learningRates: Record<string, number> = {
    'ffa-lora': 3e-3,
    'lora-fedavg': 3e-3,
    'full-fedavg': 1e-3,
  };
  log(
    `  ${clients} clients × ${localSteps} local steps from genesis on unseen plays (loss ${initialLoss.toFixed(4)}); target ${targetLoss.toFixed(4)} (−7%), cap ${cap} rounds`,
  );
  const rows: AdapterBenchResult['convergence']['rows'] = [];
  for (const rule of ADAPTER_RULES) {
    const result = await runAdapterRounds({
      rule,
      manifest,
      tensors,
      data,
      lora: BENCH_LORA,
      localSteps,
      batchSize: 8,
      learningRate: learningRates[rule]!,
      rounds: cap,
      seed: 1,
      evaluator,
      targetLoss,
      onRound: (round, loss) => log(`    ${rule} round ${round}: val loss ${loss.toFixed(4)}`),
    });
    rows.push({
      method: rule,
      rounds: result.reachedAt,
      losses: result.losses,
      bytesPerClient: result.bytesPerClient,
    });
  }
  return {
    shape,
    lora: BENCH_LORA,
    bytes,
    adapterBytesPerRound,
    fullDeltaBytesPerRound,
    ratio: fullDeltaBytesPerRound / adapterBytesPerRound,
    convergence: { clients, localSteps, learningRates, initialLoss, targetLoss, cap, rows },
  };
}

export function formatAdapters(r: AdapterBenchResult): string {
  const mb = (b: number) => (b / 1e6).toFixed(2);
  return [
    textTable(
      ['method', `numbers sent (${r.shape})`, 'MB per contributor per round', 'vs full delta'],
      r.bytes.map((row) => [
        row.method,
        row.parameters.toLocaleString(),
        mb(row.bytes),
        `${(r.fullDeltaBytesPerRound / row.bytes).toFixed(0)}× smaller`,
      ]),
    ),
    '',
    textTable(
      [
        'method',
        `rounds to ${r.convergence.targetLoss.toFixed(4)}`,
        'last val loss',
        'KB per contributor (genesis)',
      ],
      r.convergence.rows.map((row) => [
        row.method,
        row.rounds === null ? `> ${r.convergence.cap}` : String(row.rounds),
        (row.losses.at(-1) ?? Number.NaN).toFixed(4),
        (row.bytesPerClient / 1e3).toFixed(1),
      ]),
    ),
  ].join('\n');
}
