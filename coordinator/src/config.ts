// The coordinator's configuration: every knob with its default, from flags and environment
// (flags win). One schema, so the CLI, `npm start` and tests configure it the same way.
import { parseArgs } from 'node:util';
import { DEFAULT_ADDRESSES_FILE } from '@commons/chain';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_SESSION_TTL_MS, DEFAULT_SIGN_IN_TIMEOUT_MS } from './server/sign-in.ts';
import { DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS } from './server/waiting-room.ts';

export const GENESIS_DIR = fileURLToPath(new URL('../../shared/genesis', import.meta.url));

export const coordinatorConfigSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  /** 0 picks a free port. */
  port: z.number().int().min(0).max(65535).default(4000),
  /** Base URL clients and the registry use; defaults to http://host:port. */
  publicUrl: z.string().url().optional(),
  dataDir: z.string().default('.commons/coordinator'),
  rpcUrl: z.string().url().default('http://127.0.0.1:8545'),
  addressesFile: z.string().default(DEFAULT_ADDRESSES_FILE),
  /** Key with COORDINATOR_ROLE (registers candidates, posts reward roots). Never logged. */
  privateKey: z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'a 32-byte hex private key'),
  /** 'anyone', or the least token balance (whole tokens) a contributor must hold. */
  eligibility: z.union([z.literal('anyone'), z.number().nonnegative()]).default('anyone'),
  /** Strategy name; default: the policy's aggregation rule. */
  strategy: z.string().optional(),
  encoding: z.enum(['fp32', 'fp16', 'int8']).default('int8'),
  batchSize: z.number().int().min(1).default(8),
  maxSteps: z.number().int().min(1).default(20),
  maxRoundSeconds: z.number().int().min(0).default(0),
  inviteTimeoutMs: z.number().int().positive().default(10_000),
  reconnectGraceMs: z.number().int().nonnegative().default(5_000),
  /**
   * The longest session one sign-in opens. The sign-in challenge offers exactly this window, and
   * a client renews it on its connection by signing the challenge sent before it ends.
   */
  sessionTtlMs: z.number().int().min(1_000).default(DEFAULT_SESSION_TTL_MS),
  /**
   * How long a client has to sign a challenge: a connection that has not signed in by then is
   * closed, and a session's renewal challenge goes out this long before it ends.
   */
  signInTimeoutMs: z.number().int().min(100).default(DEFAULT_SIGN_IN_TIMEOUT_MS),
  /**
   * Connections one remote address may hold open without having signed in; more are refused at
   * the handshake. The default leaves room for the capacity bench's 4 × 64 concurrent sign-ins
   * from one machine; behind a reverse proxy all clients share its address.
   */
  maxUnauthenticatedPerAddress: z
    .number()
    .int()
    .min(1)
    .default(DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS),
  roundIntervalMs: z.number().int().nonnegative().default(2_000),
  publishMarginBpc: z.number().nonnegative().default(0.02),
  proposeActivation: z.boolean().default(false),
  seed: z.number().int().nonnegative().default(1),
  /**
   * Seeds the server's DP noise (round r uses noiseSeed + r) so a demo or a test is reproducible.
   * Seeded noise is predictable noise: never set it where the privacy claim matters.
   */
  noiseSeed: z.number().int().nonnegative().optional(),
  maxRounds: z.number().int().nonnegative().default(0),
  /** Characters of the held-out text to evaluate on (0: all ~111k). */
  evalChars: z.number().int().nonnegative().default(0),
  /**
   * A UTF-8 text file the operator names as the held-out text candidates are scored on (no
   * client may train on it); default: the last 10% of tinyshakespeare, the genesis split.
   */
  evalFile: z.string().min(1).optional(),
  /** Checkpoint folders imported into the model store at start (the genesis model). */
  seedModels: z.array(z.string()).default([GENESIS_DIR]),
  /** Origins allowed to open Socket.IO connections from a browser (the desktop's web mode). */
  corsOrigins: z.array(z.string()).default([]),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Scale-out mode: the Redis every node shares (redis://host:port). Absent: one process with
   * SQLite, the embedded default.
   */
  redis: z.string().url().optional(),
  /** Scale-out mode: this node's name, unique among the nodes (logs, metrics, partials). */
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ".", "_" or "-", at most 64')
    .optional(),
  /**
   * Scale-out mode: the folder every node reads and writes (the model store and the cohorts'
   * partial sums), e.g. an NFS mount. Each node keeps its own --data-dir for its SQLite.
   */
  sharedDir: z.string().optional(),
  /** Scale-out mode: the leader lease's term; a dead leader is replaced within about this. */
  leaseTtlMs: z.number().int().min(300).default(10_000),
  /** Scale-out mode: how long a node's heartbeat outlives its last refresh. */
  nodeTtlMs: z.number().int().min(300).default(4_000),
  /** Scale-out mode: the prefix of every Redis key (several communities may share a Redis). */
  redisPrefix: z.string().min(1).max(64).default('commons:'),
});

export type CoordinatorConfig = z.output<typeof coordinatorConfigSchema>;
export type CoordinatorConfigInput = z.input<typeof coordinatorConfigSchema>;

export const COORDINATOR_USAGE = `usage: commons-coordinator [options]

  --host HOST              listen address (COMMONS_COORDINATOR_HOST, default 127.0.0.1)
  --port N                 port, 0 for any free one (COMMONS_COORDINATOR_PORT, default 4000)
  --public-url URL         URL clients reach it at (COMMONS_COORDINATOR_URL)
  --data-dir DIR           SQLite database and blobs (COMMONS_COORDINATOR_DATA, default .commons/coordinator)
  --rpc URL                EVM JSON-RPC endpoint (COMMONS_RPC_URL, default http://127.0.0.1:8545)
  --addresses FILE         deployment addresses file (COMMONS_ADDRESSES)
  --key-file FILE          file holding the coordinator's private key (or COMMONS_COORDINATOR_KEY)
  --eligibility RULE       'anyone' or the least whole tokens a contributor holds (default anyone)
  --strategy NAME          fedavg, fedprox, fedadam, fedyogi, fedadagrad, fedmedian, trimmed-mean,
                           krum, multi-krum (default: the on-chain policy's rule)
  --encoding E             fp32, fp16 or int8 updates (default int8)
  --batch-size N --max-steps N     local training per round (default 8, 20)
  --max-round-seconds N    cap on the policy's round deadline
  --invite-seconds N       how long a client has to answer an invitation (and, on secure rounds,
                           each SecAgg+ stage) (default 10)
  --session-seconds N      longest session one sign-in opens; clients renew it (default 3600)
  --sign-in-seconds N      time a client has to sign in before it is disconnected (default 30)
  --max-unauthenticated N  connections one address may hold before signing in (default 256)
  --rounds N               stop after N rounds (default: run until stopped)
  --eval-file PATH         held-out text to score candidates on (default: tinyshakespeare's last 10%)
  --eval-chars N           held-out characters to score candidates on (default all)
  --publish-margin B       refuse a candidate worse than its parent by more than B bits/char (default 0.02)
  --noise-seed N           seed the server's DP noise (reproducible demos only; never in production)
  --propose                open a Governor proposal for each published candidate
  --cors ORIGIN            allow browser clients from ORIGIN (repeatable)
  --log-level L            pino level (COMMONS_LOG_LEVEL, default info)

scale-out mode (several nodes, one Redis; docs/ARCHITECTURE.md "Scale-out"):
  --redis URL              the shared Redis, redis://host:port (COMMONS_REDIS_URL)
  --node-id ID             this node's unique name (COMMONS_NODE_ID)
  --shared-dir DIR         folder every node shares: models and partial sums (COMMONS_SHARED_DIR)
  --lease-seconds N        leader lease term (default 10)
  --node-ttl-seconds N     how long a silent node counts as alive; the leader waits for its cohort
                           that long at most (default 4)`;

/** Thrown for bad flags: the CLI prints it with the usage and exits 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function real(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) {
    throw new ConfigError(`${flag} must be a number, got "${value}"`);
  }
  return n;
}

function int(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new ConfigError(`${flag} must be a whole number, got "${value}"`);
  return Number(value);
}

/** A whole number of seconds, in milliseconds. */
function seconds(value: string | undefined, flag: string): number | undefined {
  const n = int(value, flag);
  return n === undefined ? undefined : n * 1000;
}

/** Configuration from argv and env; the key comes from --key-file or COMMONS_COORDINATOR_KEY. */
export async function configFromArgs(
  argv: string[],
  env: NodeJS.ProcessEnv,
  readKeyFile: (file: string) => Promise<string>,
): Promise<CoordinatorConfig> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'public-url': { type: 'string' },
        'data-dir': { type: 'string' },
        rpc: { type: 'string' },
        addresses: { type: 'string' },
        'key-file': { type: 'string' },
        eligibility: { type: 'string' },
        strategy: { type: 'string' },
        encoding: { type: 'string' },
        'batch-size': { type: 'string' },
        'max-steps': { type: 'string' },
        'max-round-seconds': { type: 'string' },
        'invite-seconds': { type: 'string' },
        'session-seconds': { type: 'string' },
        'sign-in-seconds': { type: 'string' },
        'max-unauthenticated': { type: 'string' },
        rounds: { type: 'string' },
        'eval-chars': { type: 'string' },
        'eval-file': { type: 'string' },
        'publish-margin': { type: 'string' },
        'noise-seed': { type: 'string' },
        propose: { type: 'boolean' },
        cors: { type: 'string', multiple: true },
        'log-level': { type: 'string' },
        redis: { type: 'string' },
        'node-id': { type: 'string' },
        'shared-dir': { type: 'string' },
        'lease-seconds': { type: 'string' },
        'node-ttl-seconds': { type: 'string' },
      },
    }));
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
  const keyFile = values['key-file'];
  const privateKey = keyFile
    ? (await readKeyFile(keyFile)).trim()
    : env['COMMONS_COORDINATOR_KEY']?.trim();
  if (!privateKey) {
    throw new ConfigError(
      'a coordinator key is needed: --key-file FILE or COMMONS_COORDINATOR_KEY',
    );
  }
  const eligibility = values.eligibility ?? env['COMMONS_ELIGIBILITY'];
  const raw = {
    host: values.host ?? env['COMMONS_COORDINATOR_HOST'],
    port: int(values.port ?? env['COMMONS_COORDINATOR_PORT'], '--port'),
    publicUrl: values['public-url'] ?? env['COMMONS_COORDINATOR_URL'],
    dataDir: values['data-dir'] ?? env['COMMONS_COORDINATOR_DATA'],
    rpcUrl: values.rpc ?? env['COMMONS_RPC_URL'],
    addressesFile: values.addresses ?? env['COMMONS_ADDRESSES'],
    privateKey,
    eligibility:
      eligibility === undefined || eligibility === 'anyone'
        ? eligibility
        : Number.isFinite(Number(eligibility))
          ? Number(eligibility)
          : eligibility,
    strategy: values.strategy,
    encoding: values.encoding,
    batchSize: int(values['batch-size'], '--batch-size'),
    maxSteps: int(values['max-steps'], '--max-steps'),
    maxRoundSeconds: int(values['max-round-seconds'], '--max-round-seconds'),
    inviteTimeoutMs: seconds(values['invite-seconds'], '--invite-seconds'),
    sessionTtlMs: seconds(values['session-seconds'], '--session-seconds'),
    signInTimeoutMs: seconds(values['sign-in-seconds'], '--sign-in-seconds'),
    maxUnauthenticatedPerAddress: int(values['max-unauthenticated'], '--max-unauthenticated'),
    maxRounds: int(values.rounds, '--rounds'),
    evalChars: int(values['eval-chars'], '--eval-chars'),
    evalFile: values['eval-file'],
    publishMarginBpc: real(values['publish-margin'], '--publish-margin'),
    noiseSeed: int(values['noise-seed'], '--noise-seed'),
    proposeActivation: values.propose,
    corsOrigins: values.cors,
    logLevel: values['log-level'] ?? env['COMMONS_LOG_LEVEL'],
    redis: values.redis ?? env['COMMONS_REDIS_URL'],
    nodeId: values['node-id'] ?? env['COMMONS_NODE_ID'],
    sharedDir: values['shared-dir'] ?? env['COMMONS_SHARED_DIR'],
    leaseTtlMs: seconds(values['lease-seconds'], '--lease-seconds'),
    nodeTtlMs: seconds(values['node-ttl-seconds'], '--node-ttl-seconds'),
  };
  const defined = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  if (
    defined['redis'] !== undefined &&
    (defined['nodeId'] === undefined || defined['sharedDir'] === undefined)
  ) {
    throw new ConfigError('--redis needs --node-id ID and --shared-dir DIR (scale-out mode)');
  }
  const parsed = coordinatorConfigSchema.safeParse(defined);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // Never echo the key back: name the field only.
    throw new ConfigError(`${issue?.path.join('.') ?? 'config'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
