import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { REJECT_CODES } from '@commons/shared/protocol';

import { createLogger, LOG_LEVEL_ENV, REDACTED } from '../src/observability/logger.ts';
import { createMetrics } from '../src/observability/metrics.ts';

/** A pino destination that keeps every line, parsed. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const text: string[] = [];
  return {
    lines,
    text,
    stream: {
      write(line: string) {
        text.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  };
}

describe('metrics', () => {
  it('exposes every coordinator metric in its own registry', async () => {
    const metrics = createMetrics();
    metrics.connectedClients.set(3);
    metrics.authenticatedClients.set(2);
    metrics.observeRound('published', 42);
    metrics.uploadBytes.inc(1024);
    metrics.updatesAccepted.inc();
    metrics.reject('NORM_EXCEEDED');
    metrics.setRoundState('training');

    const text = await metrics.registry.metrics();
    expect(text).toContain('commons_connected_clients 3');
    expect(text).toContain('commons_authenticated_clients 2');
    expect(text).toContain('commons_round_duration_seconds_bucket{le="60",outcome="published"} 1');
    expect(text).toContain('commons_round_duration_seconds_sum{outcome="published"} 42');
    expect(text).toContain('commons_rounds_total{outcome="published"} 1');
    expect(text).toContain('commons_rounds_total{outcome="failed"} 0');
    expect(text).toContain('commons_upload_bytes_total 1024');
    expect(text).toContain('commons_updates_accepted_total 1');
    expect(text).toContain('commons_rejections_total{code="NORM_EXCEEDED"} 1');
    expect(text).toContain('commons_rejections_total{code="HASH_MISMATCH"} 0');
    expect(text).toContain('commons_round_state{state="training"} 1');
    expect(text).toContain('commons_round_state{state="waiting"} 0');
    // Default process metrics are there too.
    expect(text).toContain('process_cpu_user_seconds_total');

    metrics.setRoundState('aggregating');
    const next = await metrics.registry.metrics();
    expect(next).toContain('commons_round_state{state="training"} 0');
    expect(next).toContain('commons_round_state{state="aggregating"} 1');
  });

  it('has a refusal series for every protocol refusal code from the start', async () => {
    const text = await createMetrics({ defaultMetrics: false }).registry.metrics();
    expect(REJECT_CODES).toEqual(
      expect.arrayContaining(['ENCODING_MISMATCH', 'TOO_MANY_CONNECTIONS']),
    );
    for (const code of REJECT_CODES) {
      expect(text).toContain(`commons_rejections_total{code="${code}"} 0`);
    }
  });

  it('keeps two coordinators apart', async () => {
    const a = createMetrics({ defaultMetrics: false });
    const b = createMetrics({ defaultMetrics: false });
    a.updatesAccepted.inc(5);
    expect(await b.registry.metrics()).toContain('commons_updates_accepted_total 0');
  });
});

describe('logger', () => {
  afterEach(() => {
    delete process.env[LOG_LEVEL_ENV];
  });

  it('never writes a private key, passphrase, signature or token', () => {
    const out = capture();
    const log = createLogger({ destination: out.stream });
    const privateKey = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
    log.info({ privateKey }, 'wallet loaded');
    log.info(
      {
        wallet: { address: '0xabc', privateKey, passphrase: 'hunter2' },
        upload: { begin: { signature: '0xsig', sha256: 'aa' } },
        headers: { authorization: 'Bearer t0ken', cookie: 'session=1' },
        authToken: 'secret-token',
      },
      'nested',
    );
    log.child({ mnemonic: 'test test test junk' }).warn({ token: 'abc' }, 'child');

    const all = out.text.join('');
    for (const secret of [
      privateKey,
      'hunter2',
      '0xsig',
      'Bearer t0ken',
      'session=1',
      'secret-token',
      'test test test junk',
      '"abc"',
    ]) {
      expect(all).not.toContain(secret);
    }
    expect(out.lines[0]).toMatchObject({ privateKey: REDACTED, msg: 'wallet loaded' });
    // What is not secret stays readable.
    expect(out.lines[1]).toMatchObject({
      wallet: { address: '0xabc', privateKey: REDACTED, passphrase: REDACTED },
      upload: { begin: { signature: REDACTED, sha256: 'aa' } },
    });
    expect(out.lines[2]).toMatchObject({ mnemonic: REDACTED, token: REDACTED, msg: 'child' });
  });

  it('takes its level from the option, else from COMMONS_LOG_LEVEL', () => {
    const out = capture();
    process.env[LOG_LEVEL_ENV] = 'warn';
    const fromEnv = createLogger({ destination: out.stream });
    fromEnv.info('hidden');
    fromEnv.warn('shown');
    expect(out.lines.map((l) => l.msg)).toEqual(['shown']);
    expect(createLogger({ level: 'debug', destination: out.stream }).level).toBe('debug');
    process.env[LOG_LEVEL_ENV] = 'loud';
    expect(() => createLogger({ destination: out.stream })).toThrow(/log level "loud"/);
  });

  it('writes to stderr with COMMONS_LOG_STREAM=stderr, so a --json bench keeps stdout for its JSON', () => {
    // A separate process: what reaches file descriptors 1 and 2 is the point.
    const script = `import { createLogger } from './src/observability/logger.ts';
      createLogger({ name: 'coordinator' }).info({ round: 1 }, 'a line');
      process.stdout.write(JSON.stringify({ data: true }));`;
    const run = (stream: string | undefined) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: `${import.meta.dirname}/..`,
        encoding: 'utf8',
        env: { ...process.env, COMMONS_LOG_STREAM: stream, COMMONS_LOG_LEVEL: 'info' },
      });
    const toStderr = run('stderr');
    expect(toStderr.status).toBe(0);
    expect(JSON.parse(toStderr.stdout)).toEqual({ data: true });
    expect(JSON.parse(toStderr.stderr.trim())).toMatchObject({ msg: 'a line', round: 1 });
    const byDefault = run(undefined);
    expect(byDefault.stdout.split('\n')[0]).toContain('"msg":"a line"');
    const wrong = run('printer');
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/COMMONS_LOG_STREAM must be stdout or stderr, not "printer"/);
  });
});
