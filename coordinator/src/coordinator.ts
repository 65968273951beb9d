// Assembles a coordinator: chain client, SQLite + blob + model stores, the HTTP routes (model
// store, health, metrics), the Socket.IO federation edge and the round engine — on one port.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Wallet } from 'ethers';
import { selectBackend, type BackendReport } from '@commons/shared/engine';
import { readAddressesFile, CommonsClient } from '@commons/chain';
import type { Logger } from 'pino';
import {
  coordinatorConfigSchema,
  type CoordinatorConfig,
  type CoordinatorConfigInput,
} from './config.ts';
import { createLogger } from './observability/logger.ts';
import { createMetrics, type CoordinatorMetrics } from './observability/metrics.ts';
import { CandidateEvaluator } from './rounds/evaluator.ts';
import { RoundEngine } from './rounds/engine.ts';
import { openEdge } from './server/edge.ts';
import { BlobStore } from './store/blobs.ts';
import { CoordinatorDatabase } from './store/database.ts';
import { ModelStore } from './store/models.ts';

export interface Coordinator {
  /** Base URL, e.g. http://127.0.0.1:4000 */
  url: string;
  port: number;
  engine: RoundEngine;
  db: CoordinatorDatabase;
  chain: CommonsClient;
  metrics: CoordinatorMetrics;
  log: Logger;
  backend: BackendReport;
  /** Graceful shutdown: stops taking rounds, closes sockets, the server and the database. */
  close(): Promise<void>;
}

/** Starts a coordinator; resolves once it listens. */
export async function startCoordinator(input: CoordinatorConfigInput): Promise<Coordinator> {
  const config: CoordinatorConfig = coordinatorConfigSchema.parse(input);
  const log = createLogger({ level: config.logLevel, name: 'coordinator' });
  const metrics = createMetrics();
  const backend = await selectBackend();
  log.info({ backend: backend.backend }, 'model backend');
  // The held-out text the operator names, read before anything starts: a missing file stops here.
  const evalText = config.evalFile === undefined ? undefined : await readEvalText(config.evalFile);

  const addresses = await readAddressesFile(config.addressesFile);
  const chain = await CommonsClient.connect({
    rpcUrl: config.rpcUrl,
    addresses,
    privateKey: config.privateKey,
  });
  await chain.assertDeployed();
  const coordinatorAddress = new Wallet(config.privateKey).address;

  const dataDir = path.resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const db = CoordinatorDatabase.open(path.join(dataDir, 'coordinator.db'));
  try {
    bindDeployment(db, `${addresses.chainId}:${addresses.contracts.modelRegistry.toLowerCase()}`);
    const blobs = await BlobStore.open(path.join(dataDir, 'blobs'));
    const models = await ModelStore.open(path.join(dataDir, 'models'));
    for (const dir of config.seedModels) {
      const { hash, imported } = await models.importFolder(dir);
      if (imported) log.info({ hash, from: dir }, 'seeded model store');
    }

    let health: () => object = () => ({ status: 'starting' });
    const {
      httpServer,
      io,
      hub,
      port,
      publicUrl: url,
    } = await openEdge(config, {
      models,
      rewards: (roundId) => db.getRewards(roundId)?.entries,
      health: () => health(),
      metrics,
      log,
      chain,
      chainId: addresses.chainId,
    });
    const engine = new RoundEngine({
      db,
      blobs,
      models,
      chain,
      evaluator: new CandidateEvaluator({
        maxChars: config.evalChars,
        ...(evalText !== undefined ? { text: evalText } : {}),
      }),
      hub,
      metrics,
      log,
      options: {
        publicUrl: url,
        chainId: addresses.chainId,
        strategy: config.strategy,
        encoding: config.encoding,
        batchSize: config.batchSize,
        maxSteps: config.maxSteps,
        maxRoundSeconds: config.maxRoundSeconds,
        inviteTimeoutMs: config.inviteTimeoutMs,
        reconnectGraceMs: config.reconnectGraceMs,
        roundIntervalMs: config.roundIntervalMs,
        publishMarginBpc: config.publishMarginBpc,
        proposeActivation: config.proposeActivation,
        seed: config.seed,
        ...(config.noiseSeed === undefined ? {} : { noiseSeed: config.noiseSeed }),
        maxRounds: config.maxRounds,
      },
    });
    hub.attach(engine);
    health = () => {
      const roundLoop = engine.health();
      return {
        // A dead round loop is served as 503 (http/routes.ts): the process is up, its job is not.
        status: roundLoop.state === 'dead' ? 'dead' : 'ok',
        roundLoop,
        coordinator: coordinatorAddress,
        chainId: addresses.chainId,
        backend: backend.backend,
        clients: hub.connected().length,
        round: engine.status(),
      };
    };
    await engine.start();
    log.info(
      { url, dataDir, chainId: addresses.chainId, coordinator: coordinatorAddress },
      'listening',
    );

    let closing: Promise<void> | null = null;
    return {
      url,
      port,
      engine,
      db,
      chain,
      metrics,
      log,
      backend,
      close: () =>
        (closing ??= (async () => {
          await engine.stop();
          await io.close();
          httpServer.closeAllConnections();
          await new Promise<void>((resolve) => httpServer.close(() => resolve()));
          chain.destroy();
          db.close();
          log.info('stopped');
        })()),
    };
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * A data folder belongs to one deployment: its round ids are the reward rounds on that chain,
 * so pointing it at another deployment would collide. Refuse rather than corrupt.
 */
export function bindDeployment(db: CoordinatorDatabase, deployment: string): void {
  const bound = db.getMeta('deployment');
  if (bound === undefined) db.setMeta('deployment', deployment);
  else if (bound !== deployment) {
    throw new Error(
      `this data folder belongs to deployment ${bound}, not ${deployment}; use another --data-dir`,
    );
  }
}

export async function readEvalText(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`the evaluation text ${file} cannot be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (text.trim().length < 2) throw new Error(`the evaluation text ${file} is empty`);
  return text;
}
