#!/usr/bin/env node
// commons-stack (`npm start`): the local chain with the DAO, the coordinator and the desktop
// app, each in its own process; Ctrl-C (SIGINT) or SIGTERM stops them all.
import { DEVNET_CHAIN_ID } from '@commons/contracts';
import { errorMessage } from '@commons/shared/errors';
import { parseStackArgs, STACK_USAGE, startStack, StackUsageError } from '../src/stack/index.ts';

async function main(): Promise<void> {
  const options = parseStackArgs(process.argv.slice(2));
  if (!options) {
    console.log(STACK_USAGE);
    return;
  }
  console.log(`Commons: starting the local community (data in ${options.dataDir})`);
  // A signal during start-up aborts it; startStack then stops what it had started.
  const starting = new AbortController();
  const abort = () =>
    starting.abort(new Error('interrupted during start-up; stopped what had started'));
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  const stack = await startStack(options, undefined, starting.signal);
  process.off('SIGINT', abort);
  process.off('SIGTERM', abort);
  if (stack.chainId === DEVNET_CHAIN_ID) {
    console.log(
      'Dev accounts  the public Hardhat test accounts (mnemonic "test … junk"), 0-4 funded and delegated' +
        (options.coordinatorUrl ? '' : '; account 0 runs the coordinator'),
    );
  }
  // Keeps the launcher alive until a signal, even when it started no process of its own.
  const keepAlive = setInterval(() => {}, 1 << 30);
  console.log('Ready. Press Ctrl-C to stop everything.');

  let stopping = false;
  const stop = async (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    console.log(`Commons: ${why}; stopping what was started…`);
    await stack.stop();
    clearInterval(keepAlive);
    console.log('Commons: stopped.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop('SIGINT', 0));
  process.on('SIGTERM', () => void stop('SIGTERM', 0));
  void stack.exited.then(({ name, code }) => {
    const closed = name === 'app' && code === 0;
    void stop(
      closed
        ? 'the app was closed'
        : `${name} exited unexpectedly (code ${code}); see ${options.dataDir}/logs/${name}.log`,
      closed ? 0 : 1,
    );
  });
}

main().catch((error: unknown) => {
  console.error(`commons-stack: ${errorMessage(error)}`);
  if (error instanceof StackUsageError) console.error(`\n${STACK_USAGE}`);
  process.exit(error instanceof StackUsageError ? 2 : 1);
});
