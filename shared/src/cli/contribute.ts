import { readFile, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { isKeystoreJson, Wallet, type HDNodeWallet } from 'ethers';
import { selectBackend } from '../backend/select.ts';
import { CommonsClient } from '@commons/chain';
import { FederatedClient, type Connection } from '../federation/client.ts';
import type { Progress } from '../protocol/messages.ts';
import { UsageError } from './errors.ts';
import { numberFlag, parse } from './options.ts';
import { readNotes } from './read-notes.ts';

/**
 * Take part in federated training: sign in to a coordinator with your key, and for each
 * round you are invited to, train the shared model on your notes here and upload only the
 * clipped, signed change to its weights. One line per event on stdout; stops after --rounds
 * contributions (once their round's result is in) or on Ctrl-C.
 */
export async function contribute(args: string[]): Promise<number> {
  const { values } = parse(args, {
    coordinator: { type: 'string' },
    data: { type: 'string', multiple: true },
    key: { type: 'string' },
    rpc: { type: 'string' },
    addresses: { type: 'string' },
    rounds: { type: 'string' },
    yes: { type: 'boolean', default: false },
  });
  if (!values.coordinator) throw new UsageError('commons contribute needs --coordinator URL');
  if (!values.data || values.data.length === 0) {
    throw new UsageError('commons contribute needs --data PATH');
  }
  if (!values.key) throw new UsageError('commons contribute needs --key KEYFILE');
  if (values.addresses && !values.rpc) throw new UsageError('--addresses needs --rpc URL');
  const coordinator = coordinatorUrl(values.coordinator);
  const rounds = numberFlag('rounds', values.rounds, Infinity, (n) => Number.isInteger(n) && n > 0);

  const signer = await loadSigner(values.key);
  const address = await signer.getAddress();
  const { files, text } = await readNotes(values.data);
  const chain = values.rpc
    ? await CommonsClient.connect({
        rpcUrl: values.rpc,
        ...(values.addresses ? { addresses: values.addresses } : {}),
      })
    : undefined;
  try {
    const notes = `${files.length} file(s), ${text.length.toLocaleString('en-US')} characters`;
    if (!values.yes && !(await askConsent(notes, address, coordinator))) {
      throw new Error('consent not given; nothing was sent (answer y, or pass --yes)');
    }
    const backend = await selectBackend();
    say(`contributing as ${address} with ${notes}; training on ${backend.backend}`);
    return await participate({
      coordinator,
      signer,
      text,
      rounds,
      ...(chain ? { chain } : {}),
    });
  } finally {
    chain?.destroy();
  }
}

interface Participation {
  coordinator: string;
  signer: Wallet | HDNodeWallet;
  text: string;
  rounds: number;
  chain?: CommonsClient;
}

/** Runs the client until enough rounds are done, Ctrl-C, or a fatal error; the exit code. */
async function participate(p: Participation): Promise<number> {
  const abort = new AbortController();
  // Closed by us (Ctrl-C, enough rounds): exit 0. Closed by the client itself (a fatal error)
  // or because the coordinator would not sign us in: exit 1.
  let stopping = false;
  let failed = false;
  const onSigint = () => {
    say('stopping (Ctrl-C again to quit at once)');
    stopping = true;
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  const client = new FederatedClient({
    coordinator: p.coordinator,
    signer: p.signer,
    data: p.text,
    // Asked once for the whole session, above.
    consent: true,
    signal: abort.signal,
    ...(p.chain ? { chain: p.chain, chainId: p.chain.addresses.chainId } : {}),
  });
  const stop = (failure: boolean) => {
    stopping = true;
    failed ||= failure;
    void client.close();
  };
  let contributed = 0;
  let lastRound: number | null = null;
  let connection: Connection = 'idle';
  const roundStates = new Map<number, string>();
  const printProgress = progressPrinter();

  const closed = client.once('state', (s) => s.connection === 'closed');
  client.on('state', (s) => {
    if (s.connection === connection) return;
    connection = s.connection;
    if (connection === 'connecting') say(`connecting to ${p.coordinator}`);
    if (connection === 'authenticating') say('connected; signing in');
    if (connection === 'offline')
      say(`connection lost (${s.detail ?? 'no reason given'}); reconnecting`);
  });
  client.on('login', ({ address, chainId }) => say(`signed in as ${address} (chain ${chainId})`));
  client.on('invite', ({ task, accepted, reason }) => {
    const r = `round ${task.roundId}`;
    if (!accepted) return say(`${r}: declined: ${reason ?? 'no reason'}`);
    say(
      `${r}: joined (${task.strategy}, base ${short(task.baseModel.hash)}, ` +
        `up to ${task.train.maxSteps} steps, clip ${task.clipNorm}, ${task.encoding}` +
        `${task.train.proxMu > 0 ? `, FedProx μ ${task.train.proxMu}` : ''})`,
    );
  });
  client.on('progress', printProgress);
  client.on('uploaded', (u) => {
    contributed += 1;
    lastRound = u.roundId;
    say(
      `round ${u.roundId}: update accepted: norm ${u.norm.toFixed(4)} ` +
        `(${u.rawNorm.toFixed(4)} before clipping), ${u.steps}/${u.plannedSteps} steps, ` +
        `loss ${u.finalLoss.toFixed(3)}, ${kilobytes(u.byteLength)} ${u.encoding}, ` +
        `commitment ${u.commitment}`,
    );
  });
  client.on('dropped', ({ roundId, reason }) => say(`round ${roundId}: dropped: ${reason}`));
  client.on('status', (s) => {
    if (roundStates.get(s.roundId) === s.state) return;
    roundStates.set(s.roundId, s.state);
    say(
      `round ${s.roundId}: ${s.state} (${s.accepted}/${s.invited} accepted, at least ${s.minClients} needed)`,
    );
  });
  client.on('result', (r) => {
    const c = r.candidate;
    say(
      r.outcome === 'published' && c
        ? `round ${r.roundId}: published candidate ${short(c.hash)} ` +
            `(${c.valBpc.toFixed(4)} bits/char held out, ${r.accepted} updates)`
        : `round ${r.roundId}: ${r.outcome}${r.reason ? `: ${r.reason}` : ''}`,
    );
    if (contributed >= p.rounds && r.roundId === lastRound) stop(false);
  });
  client.on('rejected', ({ error, during, roundId }) => {
    const where = roundId === undefined ? '' : `round ${roundId}: `;
    say(`${where}the coordinator refused ${during}: ${error.code}: ${error.message}`);
    // Not signed in means no rounds at all: stop rather than wait forever.
    if (during === 'auth:login') stop(true);
  });
  client.on('error', (err) => say(`error: ${err.message}`));

  client.connect();
  await closed;
  process.off('SIGINT', onSigint);
  say(`done: ${contributed} update(s) accepted`);
  return failed || !stopping ? 1 : 0;
}

/**
 * The signer in a key file: a raw 0x private key (which must not be readable by group or
 * others, as ssh insists for its keys), or an encrypted JSON keystore whose passphrase is in
 * COMMONS_KEY_PASSPHRASE. No message ever includes the file's content.
 */
export async function loadSigner(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Wallet | HDNodeWallet> {
  const info = await stat(file).catch(() => {
    throw new UsageError(`no such key file: ${file}`);
  });
  if (!info.isFile()) throw new UsageError(`${file} is not a file`);
  const content = (await readFile(file, 'utf8')).trim();
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(content)) {
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      throw new Error(
        `${file} holds a private key but other users may read it (mode ${mode}); run: chmod 600 ${file}`,
      );
    }
    try {
      return new Wallet(content.startsWith('0x') ? content : `0x${content}`);
    } catch {
      throw new Error(`${file} does not hold a valid secp256k1 private key`);
    }
  }
  if (isKeystoreJson(content)) {
    const passphrase = env['COMMONS_KEY_PASSPHRASE'];
    if (passphrase === undefined) {
      throw new UsageError(
        `${file} is an encrypted keystore: set COMMONS_KEY_PASSPHRASE to its passphrase`,
      );
    }
    try {
      return await Wallet.fromEncryptedJson(content, passphrase);
    } catch (err) {
      if (err instanceof Error && err.message.includes('incorrect password')) {
        throw new Error(`wrong passphrase for the keystore ${file} (COMMONS_KEY_PASSPHRASE)`, {
          cause: err,
        });
      }
      throw new Error(`could not decrypt the keystore ${file}`, { cause: err });
    }
  }
  throw new Error(`${file} holds neither a 0x private key nor an encrypted JSON keystore`);
}

function coordinatorUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--coordinator ${value} is not a URL (e.g. http://127.0.0.1:7070)`);
  }
  if (!['http:', 'https:'].includes(url.protocol)) {
    throw new UsageError(`--coordinator ${value} must be an http:// or https:// URL`);
  }
  return url.href.replace(/\/$/, '');
}

/** Explains what taking part means and asks; anything but yes (or no terminal input) is no. */
async function askConsent(notes: string, address: string, coordinator: string): Promise<boolean> {
  process.stderr.write(
    [
      'Federated training:',
      `  Your notes (${notes}) stay on this machine. In each round you join, the shared model`,
      "  is trained on them here, and only the change to its weights, clipped to the round's",
      `  bound and signed by ${address}, is sent to ${coordinator}.`,
      '  An update can still reveal something about the notes it was trained on; the',
      "  federation's privacy policy (clipping, noise, secure aggregation) limits how much.",
      '',
    ].join('\n'),
  );
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((resolve) => {
      rl.once('close', () => resolve(''));
      void rl.question('Take part? [y/N] ').then(resolve, () => resolve(''));
    });
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Progress as lines: each phase's start and end, and at most one line every 5 s between. */
function progressPrinter(): (p: Progress) => void {
  let key = '';
  let at = 0;
  return (p) => {
    const k = `${p.roundId}:${p.phase}`;
    const end = p.done >= p.total;
    if (k === key && !end && Date.now() - at < 5_000) return;
    if (k === key && end && at === Infinity) return;
    key = k;
    at = end ? Infinity : Date.now();
    const amount =
      p.phase === 'training'
        ? `step ${p.done}/${p.total}`
        : `${kilobytes(p.done)} of ${kilobytes(p.total)}`;
    say(`round ${p.roundId}: ${p.phase} ${amount}`);
  };
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function short(hash: string): string {
  return `${hash.slice(0, 12)}…`;
}

function kilobytes(bytes: number): string {
  return `${(bytes / 1024).toFixed(bytes > 0 && bytes < 10_240 ? 1 : 0)} KiB`;
}
