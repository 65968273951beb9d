// SecAgg+ cost next to plain aggregation, for n clients of a `params`-coordinate update.
// Not wired into run.ts: `node shared/bench/secagg.ts [--clients 100,500] [--params 1000000] [--json]`.
//
// What is measured, and how the round figure is derived:
// - clientSeconds: one real SecAggClient's four stages with neighbourhood k = chooseNumShares(n)
//   (key generation and signing, k − 1 key agreements, Shamir dealing and packet encryption,
//   opening k − 1 packets, quantisation, 1 + (k − 1) mask expansions of params words, unmask).
//   Its cost depends on k and params only, so it runs in a round of k clients (complete graph);
//   the other clients only advertise and share keys.
// - serverSeconds: the server's full compute for n clients with `dropout` of them vanishing
//   before upload = protocol part + vector part. The protocol part (signature checks, routing,
//   threshold checks, Shamir reconstruction with commitment checks) is the real SecAggServer in
//   a real n-client round with 1-coordinate vectors. The vector part is the same ring functions
//   the server calls, on params words: summing the n(1 − dropout) masked vectors, expanding and
//   removing every contributor's self mask, and the pairwise masks of every dropped client
//   with each contributing neighbour. Summed vectors come from a small pool (the cost of an
//   addition does not depend on the values).
// - plainSeconds: quantising one update (client) + summing the same n(1 − dropout) quantised
//   vectors and decoding (server), in the same process.
// - secaggSeconds = clientSeconds + serverSeconds: clients run in parallel, the server after
//   them, so this is the compute on the round's critical path (network time excluded).
// - bytesPerClient: bytes one client sends and receives over the four stages (binary fields
//   at their length, the rest as JSON), with the setup message listing all n participants.
import { Wallet } from 'ethers';
import { SecAggClient } from '../src/privacy/secagg/client.ts';
import { chooseNumShares } from '../src/privacy/secagg/config.ts';
import { runLocalRound } from '../src/privacy/secagg/local-round.ts';
import type { UnmaskRequest } from '../src/privacy/secagg/messages.ts';
import { addMaskInto } from '../src/privacy/secagg/prg.ts';
import { dequantizeSum, quantizeWeighted } from '../src/privacy/secagg/quantization.ts';
import { addVectorInto } from '../src/privacy/secagg/ring.ts';
import { SecAggServer } from '../src/privacy/secagg/server.ts';

export interface SecAggBenchRow {
  clients: number;
  numShares: number;
  secaggSeconds: number;
  plainSeconds: number;
  bytesPerClient: number;
  clientSeconds: number;
  serverSeconds: number;
  serverProtocolSeconds: number;
  serverVectorSeconds: number;
  /** secaggSeconds / plainSeconds. */
  overhead: number;
}

const SETTINGS = { clippingRange: 1, quantizationRange: 2 ** 20, minClients: 3 };
const M = 2 ** 32;

/** Wire size: binary fields at their length, everything else as JSON text. */
function wireBytes(message: unknown): number {
  let binary = 0;
  const json = JSON.stringify(message, (_k, v: unknown) => {
    if (v instanceof Uint8Array) {
      binary += v.length;
      return '';
    }
    return v;
  });
  return binary + json.length;
}

function seconds(start: number): number {
  return (performance.now() - start) / 1000;
}

function wallets(n: number, offset: number): Wallet[] {
  return Array.from(
    { length: n },
    (_, i) => new Wallet('0x' + (offset + i + 1).toString(16).padStart(64, '0')),
  );
}

function randomUpdate(params: number): Float32Array {
  return Float32Array.from({ length: params }, () => Math.random() * 2 - 1);
}

/** One client's compute at neighbourhood k, and the bytes it exchanges. */
async function measureClient(k: number, params: number, setupBytesForN: number) {
  const signers = wallets(k, 1_000_000);
  const server = new SecAggServer({
    roundId: 1,
    participants: signers.map((s) => s.address),
    vectorLength: params,
    settings: { ...SETTINGS, numShares: k },
  });
  const clients = signers.map((signer) => new SecAggClient({ signer }));
  const me = clients[0] as SecAggClient;
  const update = randomUpdate(params);
  let busy = 0;
  let bytes = setupBytesForN;
  const setup = server.setupRequest();
  for (const [i, c] of clients.entries()) {
    const t = performance.now();
    const ad = await c.onSetup(setup);
    if (i === 0) {
      busy += seconds(t);
      bytes += wireBytes(ad);
    }
    server.receiveKeyAdvertisement(ad);
  }
  for (const r of server.closeKeyAdvertisement()) {
    const t = performance.now();
    const res = (clients[r.nodeId - 1] as SecAggClient).onShareKeys(r);
    if (r.nodeId === 1) {
      busy += seconds(t);
      bytes += wireBytes(r) + wireBytes(res);
    }
    server.receiveShareKeys(res);
  }
  const request = server.closeShareKeys().find((r) => r.nodeId === 1);
  if (!request) throw new Error('the measured client fell out of its own round');
  let t = performance.now();
  const masked = me.onMaskedInputRequest(request, update, 1);
  busy += seconds(t);
  bytes += wireBytes(request) + wireBytes(masked);
  // Its unmask request as the server would send it when every neighbour survived.
  const unmask: UnmaskRequest = {
    version: 1,
    stage: 'unmask',
    roundId: 1,
    nodeId: 1,
    survivors: server.neighboursOf(1) as number[],
    dropped: [],
  };
  t = performance.now();
  const revealed = me.onUnmask(unmask);
  busy += seconds(t);
  bytes += wireBytes(unmask) + wireBytes(revealed);
  return { clientSeconds: busy, bytesPerClient: bytes };
}

/** The server's compute in a real n-client round, vectors of one coordinate. */
async function measureServerProtocol(n: number, k: number, dropout: number) {
  const signers = wallets(n, 0);
  const dropped = Array.from(
    { length: Math.round(n * dropout) },
    (_, i) => 1 + Math.floor((i * n) / Math.round(n * dropout)),
  );
  const probe = new SecAggServer({
    roundId: 1,
    participants: signers.map((s) => s.address),
    vectorLength: 1,
    settings: { ...SETTINGS, numShares: k },
  });
  const setupBytes = wireBytes(probe.setupRequest());
  let serverBusy = 0;
  // Wrap the server's methods to time only its own work.
  const wrap =
    <A extends unknown[], R>(f: (...a: A) => R) =>
    (...a: A): R => {
      const t = performance.now();
      try {
        return f(...a);
      } finally {
        serverBusy += seconds(t);
      }
    };
  const proto = SecAggServer.prototype;
  const names = [
    'receiveKeyAdvertisement',
    'closeKeyAdvertisement',
    'receiveShareKeys',
    'closeShareKeys',
    'receiveMaskedInput',
    'closeMaskedInput',
    'receiveUnmask',
    'finish',
  ] as const;
  const originals = names.map((name) => proto[name]);
  names.forEach((name, i) => {
    (proto as unknown as Record<string, unknown>)[name] = function (
      this: SecAggServer,
      ...a: unknown[]
    ) {
      return wrap((...b: unknown[]) =>
        (originals[i] as (...c: unknown[]) => unknown).apply(this, b),
      )(...a);
    };
  });
  try {
    const { result } = await runLocalRound({
      roundId: 1,
      signers,
      updates: signers.map(() => randomUpdate(1)),
      settings: { ...SETTINGS, numShares: k },
      dropouts: { 'collect-masked-input': dropped },
    });
    return { serverProtocolSeconds: serverBusy, setupBytes, result };
  } finally {
    names.forEach(
      (name, i) => ((proto as unknown as Record<string, unknown>)[name] = originals[i]),
    );
  }
}

export async function benchSecAgg(options: {
  clients: number[];
  params: number;
  dropout?: number;
}): Promise<SecAggBenchRow[]> {
  const { params } = options;
  const dropout = options.dropout ?? 0.1;
  const config = { ...SETTINGS, maxWeight: 1 };
  const rows: SecAggBenchRow[] = [];
  for (const n of options.clients) {
    const k = chooseNumShares(n);
    const { serverProtocolSeconds, setupBytes, result } = await measureServerProtocol(
      n,
      k,
      dropout,
    );
    const { clientSeconds, bytesPerClient } = await measureClient(k, params, setupBytes);
    const contributors = result.reconstructed.selfMasks.length;
    // Pairwise masks the server removes: each dropped node with each contributing neighbour.
    const probe = new SecAggServer({
      roundId: 1,
      participants: wallets(n, 0).map((w) => w.address),
      vectorLength: 1,
      settings: { ...SETTINGS, numShares: k },
    });
    let pairwise = 0;
    for (const d of result.reconstructed.maskKeys) {
      pairwise += probe
        .neighboursOf(d)
        .filter((j) => j !== d && result.reconstructed.selfMasks.includes(j)).length;
    }
    // Server vector part.
    const pool = Array.from({ length: 4 }, () =>
      Uint32Array.from({ length: params + 1 }, () => (Math.random() * M) >>> 0),
    );
    const aggregate = new Uint32Array(params + 1);
    const seed = new Uint8Array(32);
    let t = performance.now();
    for (let i = 0; i < contributors; i++) addVectorInto(aggregate, pool[i % 4] as Uint32Array, M);
    for (let i = 0; i < contributors + pairwise; i++) {
      seed[0] = i & 0xff;
      seed[1] = i >> 8;
      addMaskInto(aggregate, seed, i < contributors ? -1 : 1, M);
    }
    dequantizeSum(aggregate, config);
    const serverVectorSeconds = seconds(t);
    // Plain: quantise one update, sum the same number of quantised vectors, decode.
    const update = randomUpdate(params);
    t = performance.now();
    quantizeWeighted(update, 1, config);
    const plainClient = seconds(t);
    const quantised = Array.from({ length: 4 }, () => quantizeWeighted(update, 1, config));
    const plainSum = new Uint32Array(params + 1);
    t = performance.now();
    for (let i = 0; i < contributors; i++)
      addVectorInto(plainSum, quantised[i % 4] as Uint32Array, M);
    dequantizeSum(plainSum, config);
    const plainSeconds = plainClient + seconds(t);
    const serverSeconds = serverProtocolSeconds + serverVectorSeconds;
    const secaggSeconds = clientSeconds + serverSeconds;
    rows.push({
      clients: n,
      numShares: k,
      secaggSeconds,
      plainSeconds,
      bytesPerClient,
      clientSeconds,
      serverSeconds,
      serverProtocolSeconds,
      serverVectorSeconds,
      overhead: secaggSeconds / plainSeconds,
    });
  }
  return rows;
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const clients = (flag('--clients') ?? '100,500,1000').split(',').map(Number);
  const params = Number(flag('--params') ?? 1_000_000);
  const rows = await benchSecAgg({ clients, params });
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(rows, null, 2));
  } else {
    console.log(`SecAgg+ vs plain aggregation, ${params} parameters, 10% dropped before upload`);
    console.log(
      'clients  k   client s  server s (proto+vector)   secagg s  plain s  overhead  KiB/client',
    );
    for (const r of rows) {
      console.log(
        `${String(r.clients).padStart(7)} ${String(r.numShares).padStart(3)} ${r.clientSeconds.toFixed(2).padStart(9)} ` +
          `${r.serverSeconds.toFixed(2).padStart(9)} (${r.serverProtocolSeconds.toFixed(2)}+${r.serverVectorSeconds.toFixed(2)})`.padEnd(
            26,
          ) +
          `${r.secaggSeconds.toFixed(2).padStart(10)} ${r.plainSeconds.toFixed(2).padStart(8)} ${r.overhead.toFixed(1).padStart(8)}× ` +
          `${(r.bytesPerClient / 1024).toFixed(0).padStart(10)}`,
      );
    }
  }
}
