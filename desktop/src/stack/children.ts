// The stack's child processes. Each runs in its own process group, so stopping one also stops
// what it started (the desktop launcher starts Electron; nothing may be left running), and its
// output goes to a log file in the data folder rather than over the start-up log.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface StackChild {
  name: string;
  pid: number;
  logFile: string;
  /** The script it runs (its first argument): identifies it in /proc after a crash. */
  script: string;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<number | null>;
  /** SIGINT to the whole group, then SIGKILL after `graceMs`; resolves when the group is gone. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of its log, to show why it failed. */
  tail(lines?: number): string;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function spawnChild(options: {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  logFile: string;
  /** Called with each line the child writes to stdout. */
  onLine?: (line: string) => void;
}): StackChild {
  const log = createWriteStream(options.logFile, { flags: 'a' });
  const child: ChildProcess = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`Could not start ${options.name}`);
  const pid = child.pid;
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  if (options.onLine && child.stdout) {
    createInterface({ input: child.stdout }).on('line', options.onLine);
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    name: options.name,
    pid,
    logFile: options.logFile,
    script: options.args[0] ?? options.command,
    exited,
    stop: async (graceMs = 15_000) => {
      if (child.exitCode === null && child.signalCode === null) {
        signalGroup(pid, 'SIGINT');
        const done = await Promise.race([
          exited.then(() => true),
          sleep(graceMs).then(() => false),
        ]);
        if (!done) signalGroup(pid, 'SIGKILL');
        await exited;
      }
      // What the child started (Electron's helpers) gets a moment to follow it, then no more.
      for (let i = 0; i < 20 && groupAlive(pid); i++) await sleep(100);
      if (groupAlive(pid)) signalGroup(pid, 'SIGKILL');
      await closed;
      await new Promise((resolve) => log.end(resolve));
    },
    tail: (lines = 20) => {
      try {
        return readFileSync(options.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
}
