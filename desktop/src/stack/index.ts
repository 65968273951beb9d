// The one-command local community (`npm start`), for the launcher and for tests and demos:
//   const stack = await startStack(parseStackArgs(['--no-app', '--data-dir', dir])!);
//   … stack.rpcUrl, stack.addresses, stack.coordinatorUrl, stack.keys …
//   await stack.stop();
export { startStack, StackError, type Stack } from './stack.ts';
export { parseStackArgs, STACK_USAGE, StackUsageError, type StackOptions } from './options.ts';
export { JournalMismatchError } from './chain-journal.ts';
