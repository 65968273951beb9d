// A redis-server child process with its own data folder, on a free loopback port: what
// `npm start -- --nodes N`, the scale-out tests and the scale-out bench run the nodes against.
// Production points the nodes at a Redis someone operates (--redis URL); this is for one machine.
//
// Append-only file with fsync on every write: the fencing counter and the round records must
// survive a Redis restart, or a restarted Redis would hand out fencing tokens again from 1.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';

export interface RedisServer {
  url: string;
  port: number;
  dataDir: string;
  /** The child process (its pid, for the fault tests that kill it). */
  readonly process: ChildProcess;
  /** Stops it (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts redis-server (Debian's, from PATH) on `port` (default: a free one) with its data in
 * `dataDir`; resolves once it accepts connections. A missing binary is named with its fix.
 */
export async function startRedisServer(
  dataDir: string,
  options: { port?: number; binary?: string } = {},
): Promise<RedisServer> {
  await mkdir(dataDir, { recursive: true });
  const port = options.port ?? (await freePort());
  const binary = options.binary ?? 'redis-server';
  const child = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dataDir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new Error(
              `${binary} is not installed; install Debian's redis-server (apt-get install -y redis-server)`,
            )
          : error,
      ),
    );
    child.once('exit', (code) =>
      reject(new Error(`redis-server exited with ${code} before it was ready: ${output.trim()}`)),
    );
  });
  // With --loglevel warning the ready line may not be printed: a PING settles it too.
  await Promise.race([ready, pingUntilReady(port, child)]);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dataDir,
    process: child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Sends PING over a raw socket until +PONG comes back (the server is up) or the child exits. */
async function pingUntilReady(port: number, child: ChildProcess): Promise<void> {
  const { connect } = await import('node:net');
  for (let attempt = 0; attempt < 200; attempt++) {
    if (child.exitCode !== null) return new Promise(() => undefined);
    const pong = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('error', () => resolve(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data.toString().startsWith('+PONG'));
      });
    });
    if (pong) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
}
