// The coordinator's network edge, the same for a single coordinator and a scale-out node: the
// HTTP routes (model store, rewards, health, metrics), Socket.IO on the same port, listening,
// and the federation hub over it. A scale-out node passes the Redis Streams adapter.
import { createServer, type Server as HttpServer } from 'node:http';
import type { CommonsClient, RewardEntry } from '@commons/chain';
import { DEFAULT_CHUNK_BYTES, MESSAGE_OVERHEAD_BYTES } from '@commons/shared/protocol';
import type { Logger } from 'pino';
import { Server, type ServerOptions } from 'socket.io';
import type { CoordinatorConfig } from '../config.ts';
import { createHttpHandler } from '../http/routes.ts';
import type { CoordinatorMetrics } from '../observability/metrics.ts';
import type { ModelStore } from '../store/models.ts';
import { FederationHub, type FederationServer } from './federation-hub.ts';

export interface EdgeDeps {
  models: ModelStore;
  rewards: (roundId: number) => readonly RewardEntry[] | undefined;
  health: () => object | Promise<object>;
  metrics: CoordinatorMetrics;
  log: Logger;
  chain: CommonsClient;
  chainId: number;
  /** Socket.IO's adapter (scale-out: the Redis Streams one); default: in memory. */
  adapter?: ServerOptions['adapter'];
}

export interface Edge {
  httpServer: HttpServer;
  io: FederationServer;
  hub: FederationHub;
  port: number;
  /** http://host:port, where this process listens. */
  localUrl: string;
  /** The URL clients and the registry use (--public-url, else localUrl). */
  publicUrl: string;
}

export async function openEdge(config: CoordinatorConfig, deps: EdgeDeps): Promise<Edge> {
  // The HTTP routes are attached before Socket.IO: engine.io wraps the request listeners that
  // exist when it attaches and answers its own path first.
  const handler = createHttpHandler({
    models: deps.models,
    rewards: deps.rewards,
    metrics: deps.metrics.registry,
    health: deps.health,
    log: deps.log,
  });
  const httpServer = createServer((req, res) => {
    if (!handler(req, res)) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `no route for ${req.method} ${req.url}` }));
    }
  });
  const io: FederationServer = new Server(httpServer, {
    serveClient: false,
    // Just above one upload chunk: a bigger message is refused by Socket.IO before it is
    // buffered, so no client can make the coordinator hold more than this per message.
    maxHttpBufferSize: DEFAULT_CHUNK_BYTES + MESSAGE_OVERHEAD_BYTES,
    cors: config.corsOrigins.length > 0 ? { origin: config.corsOrigins } : undefined,
    ...(deps.adapter ? { adapter: deps.adapter } : {}),
  });
  const port = await listen(httpServer, config.host, config.port);
  const localUrl = `http://${config.host}:${port}`;
  const publicUrl = config.publicUrl ?? localUrl;
  const hub = new FederationHub(
    io,
    deps.chain,
    {
      publicUrl,
      chainId: deps.chainId,
      eligibility:
        config.eligibility === 'anyone'
          ? { kind: 'anyone' }
          : {
              kind: 'token-holders',
              minTokens: BigInt(Math.round(config.eligibility * 1e6)) * 10n ** 12n,
            },
      sessionTtlMs: config.sessionTtlMs,
      signInTimeoutMs: config.signInTimeoutMs,
      maxUnauthenticatedPerAddress: config.maxUnauthenticatedPerAddress,
    },
    deps.metrics,
    deps.log,
  );
  return { httpServer, io, hub, port, localUrl, publicUrl };
}

export function listen(server: HttpServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(`port ${port} on ${host} is in use; choose another with --port`)
          : error,
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
