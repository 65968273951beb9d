// Flags and environment of `commons-stack` (`npm start`); flags win over the environment.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { errorMessage } from '@commons/shared/errors';

export interface StackOptions {
  /** Everything the stack keeps: chain journal, addresses, coordinator data and key, logs. */
  dataDir: string;
  /** Port of the local chain's JSON-RPC on 127.0.0.1 (ignored with `rpcUrl`). */
  chainPort: number;
  /** Port of the local coordinator (ignored with `coordinatorUrl`); 0: any free one. */
  coordinatorPort: number;
  /** Port of the web-mode app; 0: any free one. */
  appPort: number;
  /** An existing chain to use instead of starting one. */
  rpcUrl?: string;
  /** Addresses file (default `<dataDir>/chain/addresses.json`). */
  addressesFile?: string;
  /** A running coordinator to use instead of starting one. */
  coordinatorUrl?: string;
  /**
   * Coordinator processes: 1, the single embedded coordinator; 2 or more, scale-out nodes
   * sharing a local Redis behind a front door on `coordinatorPort`.
   */
  nodes: number;
  /** Key of the coordinator account (mode 0600); on the devnet written for you. */
  coordinatorKeyFile?: string;
  /** Start the desktop app (default true). */
  app: boolean;
  /** `auto`: Electron when its binary runs, else web mode; `web`: always web mode. */
  appMode: 'auto' | 'web';
  /** Forget the local chain and the coordinator's data bound to it before starting. */
  reset: boolean;
}

/** More nodes than this on one machine only compete for its cores. */
const MAX_NODES = 16;

export const STACK_USAGE = `commons-stack (npm start): the whole local Commons community in one command —
a local chain with the DAO deployed, the federated coordinator and the desktop app.

Usage: npm start -- [options]        (or: node desktop/bin/commons-stack.ts [options])

Options (environment variable in brackets):
  --data-dir <path>          what the stack keeps [COMMONS_STACK_DIR] (default .commons)
  --chain-port <n>           local chain JSON-RPC port [COMMONS_CHAIN_PORT] (default 8545)
  --coordinator-port <n>     coordinator port [COMMONS_COORDINATOR_PORT] (default 4000);
                             with --nodes, the front door's
  --app-port <n>             web-mode app port [COMMONS_APP_PORT] (default: a free one)
  --rpc <url>                use this chain instead of starting one [COMMONS_RPC_URL]
  --addresses <file>         deployment addresses file [COMMONS_ADDRESSES]
                             (default <data-dir>/chain/addresses.json; on a chain other than
                             the devnet, the file written by npm run deploy -w contracts)
  --coordinator <url>        use this coordinator instead of starting one [COMMONS_COORDINATOR_URL]
  --coordinator-key-file <f> the coordinator account's key, mode 0600 [COMMONS_COORDINATOR_KEY_FILE]
                             (devnet default: <data-dir>/coordinator.key, development account 0)
  --nodes <n>                coordinator nodes, 1-${MAX_NODES} [COMMONS_NODES] (default 1). From 2: scale-out
                             mode, n nodes sharing a local Redis (redis-server from PATH) behind
                             a front door on the coordinator port
  --no-app                   start the chain and the coordinator only
  --web                      the app in web mode even when Electron is installed
  --reset                    forget the local chain (journal, addresses) and the coordinator's
                             data bound to it (the nodes' and Redis's too), then start afresh
  -h, --help                 this text

Ctrl-C stops everything. A second start resumes the same chain, contracts and coordinator.`;

export class StackUsageError extends Error {}

function port(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback;
  if (!/^\d+$/.test(text) || Number(text) > 65_535) {
    throw new StackUsageError(`${flag} must be a port number (0-65535), got ${text}`);
  }
  return Number(text);
}

function nodeCount(text: string | undefined): number {
  if (text === undefined || text === '') return 1;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_NODES) {
    throw new StackUsageError(
      `--nodes must be a whole number of coordinator nodes from 1 to ${MAX_NODES}, got ${text}`,
    );
  }
  return Number(text);
}

/** Parses the launcher's arguments; null when help was asked for. */
export function parseStackArgs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): StackOptions | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        'data-dir': { type: 'string' },
        'chain-port': { type: 'string' },
        'coordinator-port': { type: 'string' },
        'app-port': { type: 'string' },
        rpc: { type: 'string' },
        addresses: { type: 'string' },
        coordinator: { type: 'string' },
        'coordinator-key-file': { type: 'string' },
        nodes: { type: 'string' },
        'no-app': { type: 'boolean' },
        web: { type: 'boolean' },
        reset: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new StackUsageError(errorMessage(error));
  }
  if (values.help) return null;
  const resolve = (p: string | undefined) => (p ? path.resolve(cwd, p) : undefined);
  const rpcUrl = values.rpc ?? (env.COMMONS_RPC_URL || undefined);
  const coordinatorUrl = values.coordinator ?? (env.COMMONS_COORDINATOR_URL || undefined);
  for (const [flag, url] of [
    ['--rpc', rpcUrl],
    ['--coordinator', coordinatorUrl],
  ] as const) {
    if (url !== undefined && !/^https?:\/\/./.test(url)) {
      throw new StackUsageError(`${flag} must be an http(s) URL, got ${url}`);
    }
  }
  const nodesText = values.nodes ?? (env.COMMONS_NODES || undefined);
  const nodes = nodeCount(nodesText);
  // --nodes says how many coordinators to start here; --coordinator says to start none.
  if (nodesText !== undefined && coordinatorUrl !== undefined) {
    const given = (flag: string, envName: string, fromFlag: boolean) =>
      fromFlag ? flag : `${flag} (from ${envName})`;
    throw new StackUsageError(
      `${given('--nodes', 'COMMONS_NODES', values.nodes !== undefined)} starts coordinator nodes ` +
        `here, ${given('--coordinator', 'COMMONS_COORDINATOR_URL', values.coordinator !== undefined)} ` +
        'uses a coordinator running elsewhere: pass one or the other',
    );
  }
  const options: StackOptions = {
    dataDir: path.resolve(cwd, values['data-dir'] ?? (env.COMMONS_STACK_DIR || '.commons')),
    chainPort: port('--chain-port', values['chain-port'] ?? env.COMMONS_CHAIN_PORT, 8545),
    coordinatorPort: port(
      '--coordinator-port',
      values['coordinator-port'] ?? env.COMMONS_COORDINATOR_PORT,
      4000,
    ),
    appPort: port('--app-port', values['app-port'] ?? env.COMMONS_APP_PORT, 0),
    nodes,
    app: !values['no-app'],
    appMode: values.web ? 'web' : 'auto',
    reset: values.reset ?? false,
  };
  const addressesFile = resolve(values.addresses ?? (env.COMMONS_ADDRESSES || undefined));
  const coordinatorKeyFile = resolve(
    values['coordinator-key-file'] ?? (env.COMMONS_COORDINATOR_KEY_FILE || undefined),
  );
  if (rpcUrl) options.rpcUrl = rpcUrl;
  if (coordinatorUrl) options.coordinatorUrl = coordinatorUrl.replace(/\/$/, '');
  if (addressesFile) options.addressesFile = addressesFile;
  if (coordinatorKeyFile) options.coordinatorKeyFile = coordinatorKeyFile;
  return options;
}
