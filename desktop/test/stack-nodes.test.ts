// `npm start -- --nodes 3` as a test runs it: the stack in this process (--no-app, free ports, a
// temporary data folder) with a real redis-server, three scale-out coordinator nodes and the
// front door; the front door answers for the cluster, exactly one node leads, and stop() leaves
// no process behind (Redis included). Also: --nodes is checked, and a missing redis-server named.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '@commons/contracts';
import { parseStackArgs } from '../src/stack/options.ts';
import { startStack, StackError, type Stack } from '../src/stack/stack.ts';

const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-stack-nodes-'));
let stack: Stack | undefined;

interface Health {
  mode?: string;
  node?: string;
  leader?: string | null;
  isLeader?: boolean;
  nodes?: number;
}

async function health(url: string): Promise<Health> {
  const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
  expect(response.status).toBe(200);
  return (await response.json()) as Health;
}

/** Polls `check` until it returns a value, or fails with `what` after `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 20_000) {
  const started = Date.now();
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Whether the process group `pid` leads (each child runs in its own) has any process left. */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Even when an assertion fails mid-test, the stack is stopped and its folder removed.
afterAll(async () => {
  await stack?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('commons-stack --nodes', () => {
  it('checks --nodes and refuses it with --coordinator', () => {
    expect(parseStackArgs([])?.nodes).toBe(1);
    expect(parseStackArgs(['--nodes', '3'])?.nodes).toBe(3);
    expect(parseStackArgs([], { COMMONS_NODES: '4' })?.nodes).toBe(4);
    expect(parseStackArgs(['--nodes', '2'], { COMMONS_NODES: '4' })?.nodes).toBe(2);
    for (const bad of ['0', '17', '2.5', 'three', '-1']) {
      expect(() => parseStackArgs([`--nodes=${bad}`])).toThrow(
        `--nodes must be a whole number of coordinator nodes from 1 to 16, got ${bad}`,
      );
    }
    expect(() =>
      parseStackArgs(['--nodes', '3', '--coordinator', 'http://127.0.0.1:4000']),
    ).toThrow(
      /--nodes starts coordinator nodes here, --coordinator uses a coordinator running elsewhere/,
    );
    expect(() =>
      parseStackArgs(['--coordinator', 'http://127.0.0.1:4000'], { COMMONS_NODES: '2' }),
    ).toThrow(/--nodes \(from COMMONS_NODES\)/);
  });

  it('names redis-server and its install command when it is not on PATH', async () => {
    const options = parseStackArgs([
      '--nodes',
      '2',
      '--no-app',
      '--data-dir',
      dataDir,
      '--chain-port',
      String(await freePort()),
      '--coordinator-port',
      '0',
    ])!;
    const saved = process.env.PATH;
    process.env.PATH = path.join(dataDir, 'no-such-bin');
    try {
      const failed = startStack(options, () => {});
      await expect(failed).rejects.toThrow(StackError);
      await expect(failed).rejects.toThrow(/apt-get install -y redis-server/);
    } finally {
      process.env.PATH = saved;
    }
    // Refused before anything started.
    expect(existsSync(path.join(dataDir, 'stack.json'))).toBe(false);
  });

  it(
    'runs Redis, three nodes and the front door; one leader; stop() leaves nothing running',
    { timeout: 90_000 },
    async () => {
      const coordinatorPort = await freePort();
      const options = parseStackArgs([
        '--nodes',
        '3',
        '--no-app',
        '--data-dir',
        dataDir,
        '--chain-port',
        String(await freePort()),
        '--coordinator-port',
        String(coordinatorPort),
      ])!;
      const lines: string[] = [];
      stack = await startStack(options, (line) => lines.push(line));
      const output = lines.join('\n');

      const doorUrl = `http://127.0.0.1:${coordinatorPort}`;
      expect(stack.coordinatorUrl).toBe(doorUrl);
      expect(stack.processes.map((p) => p.name)).toEqual([
        'chain',
        'redis',
        'coordinator-n1',
        'coordinator-n2',
        'coordinator-n3',
        'front-door',
      ]);
      for (const { logFile } of stack.processes) expect(existsSync(logFile)).toBe(true);
      expect(output).toMatch(/^Redis {9}redis:\/\/127\.0\.0\.1:\d+ /m);
      for (const node of stack.cluster!.nodes) {
        expect(node.dataDir).toBe(path.join(dataDir, 'coordinator-nodes', node.id));
        expect(output).toContain(`Node ${node.id.padEnd(8)} ${node.url} `);
      }
      expect(output).toContain(`Coordinator   ${doorUrl} (front door over 3 nodes`);
      expect(output).toMatch(/^Leader {8}n[123] \(holds the lease/m);

      // Through the front door: a node answers, and once every node has beaten (each beats
      // every second), all three are counted live.
      const viaDoor = await until('3 live nodes behind the front door', async () => {
        const answer = await health(doorUrl);
        return answer.nodes === 3 ? answer : undefined;
      });
      expect(viaDoor.mode).toBe('scale-out');

      // Exactly one leader: every node names the same one, and only that one holds the lease.
      const leader = await until('one leader named by every node', async () => {
        const answers = await Promise.all(stack!.cluster!.nodes.map((node) => health(node.url)));
        const named = new Set(answers.map((answer) => answer.leader));
        const holders = answers.filter((answer) => answer.isLeader).map((answer) => answer.node);
        return named.size === 1 && holders.length === 1 && holders[0] === answers[0]!.leader
          ? holders[0]
          : undefined;
      });
      expect(['n1', 'n2', 'n3']).toContain(leader);

      const pids = stack.processes.map((p) => p.pid);
      await stack.stop();
      for (const pid of pids) expect(groupAlive(pid)).toBe(false);
      expect(existsSync(path.join(dataDir, 'stack.json'))).toBe(false);
      await expect(fetch(`${doorUrl}/healthz`)).rejects.toThrow();
    },
  );
});
