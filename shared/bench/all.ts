/**
 * `npm run bench -w shared [-- --json] [-- --shapes smollm2-135m,…] [-- --weights f32|int8]`:
 * the reference GPT's training and generation speed (run.ts), then the real-model shapes
 * (real-models.ts), each in a process of its own, both given these arguments. With --json,
 * stdout holds one JSON object, the two sections merged (run.ts's fields and `realModels`);
 * tables and progress go to stderr. (An npm script `a && b -- --json` would hand --json to b
 * only, and a's table would land on stdout ahead of b's JSON.)
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');

/** Runs one bench script to its end; its stdout when --json (else it went to the terminal). */
async function section(script: string): Promise<string> {
  const child = spawn(process.execPath, [join(here, script), ...args], {
    stdio: ['ignore', json ? 'pipe' : 'inherit', 'inherit'],
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) {
    throw new Error(`bench/${script} ended with ${signal ?? `exit code ${code}`}`);
  }
  return out;
}

/** A section's JSON object, or an error naming the section and what it printed instead. */
function parsed(script: string, out: string): Record<string, unknown> {
  try {
    return JSON.parse(out) as Record<string, unknown>;
  } catch {
    throw new Error(`bench/${script} --json printed no JSON object: ${out.slice(0, 200)}`);
  }
}

const reference = await section('run.ts');
const realModels = await section('real-models.ts');
if (json) {
  const merged = { ...parsed('run.ts', reference), ...parsed('real-models.ts', realModels) };
  process.stdout.write(`${JSON.stringify(merged)}\n`);
}
