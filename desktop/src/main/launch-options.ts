// How commons-desktop is told where things are: flags first, then environment variables, then
// defaults. Shared by the launcher (bin/commons-desktop.ts) and the Electron main process, which
// the launcher starts with the same flags.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

export interface LaunchOptions {
  dataDir: string;
  /** Web mode's HTTP/WebSocket port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** Endpoint overrides, saved into settings at start-up when given. */
  coordinatorUrl?: string;
  rpcUrl?: string;
  addresses?: string;
  /** 'auto': Electron when its binary runs, else web. */
  mode: 'auto' | 'web' | 'electron';
  help: boolean;
}

export const USAGE = `Usage: commons-desktop [options]

  --data-dir <path>      where the vault, wallet, models and settings live
                         (env COMMONS_DATA_DIR; default ~/.commons/desktop)
  --port <n>             web mode port on 127.0.0.1 (env COMMONS_PORT; default: a free port)
  --coordinator <url>    federation coordinator (env COMMONS_COORDINATOR_URL)
  --rpc <url>            chain JSON-RPC endpoint (env COMMONS_RPC_URL)
  --addresses <path>     deployment addresses file (env COMMONS_ADDRESSES)
  --web                  use web mode even if Electron is installed
  --electron             require Electron (fail instead of falling back to web mode)
  -h, --help             show this help
`;

export function parseLaunchOptions(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): LaunchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      port: { type: 'string' },
      coordinator: { type: 'string' },
      rpc: { type: 'string' },
      addresses: { type: 'string' },
      web: { type: 'boolean', default: false },
      electron: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const portText = values.port ?? env.COMMONS_PORT ?? '0';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port must be a whole number from 0 to 65535, not "${portText}".`);
  }
  if (values.web && values.electron) throw new Error('Choose one of --web and --electron.');
  const pick = (flag: string | undefined, name: string) => flag ?? env[name] ?? undefined;
  const options: LaunchOptions = {
    dataDir: path.resolve(
      pick(values['data-dir'], 'COMMONS_DATA_DIR') ??
        path.join(os.homedir(), '.commons', 'desktop'),
    ),
    port,
    mode: values.web ? 'web' : values.electron ? 'electron' : 'auto',
    help: values.help,
  };
  const coordinatorUrl = pick(values.coordinator, 'COMMONS_COORDINATOR_URL');
  const rpcUrl = pick(values.rpc, 'COMMONS_RPC_URL');
  const addresses = pick(values.addresses, 'COMMONS_ADDRESSES');
  if (coordinatorUrl) options.coordinatorUrl = coordinatorUrl;
  if (rpcUrl) options.rpcUrl = rpcUrl;
  if (addresses) options.addresses = path.resolve(addresses);
  return options;
}

/** The flags that reproduce these options, for handing them on to the Electron process. */
export function toArgv(options: LaunchOptions): string[] {
  const argv = ['--data-dir', options.dataDir, '--port', String(options.port)];
  if (options.coordinatorUrl) argv.push('--coordinator', options.coordinatorUrl);
  if (options.rpcUrl) argv.push('--rpc', options.rpcUrl);
  if (options.addresses) argv.push('--addresses', options.addresses);
  return argv;
}
