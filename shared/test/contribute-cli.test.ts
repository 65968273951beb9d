import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { encryptKeystoreJson, Wallet } from 'ethers';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSigner } from '../src/cli/contribute.ts';
import { UsageError } from '../src/cli/errors.ts';

// `commons contribute` up to the point where it would talk to a coordinator: flags, the key
// file, consent. The rounds themselves run against the real coordinator (coordinator/test).
const BIN = resolve(import.meta.dirname, '../bin/commons.ts');
const wallet = Wallet.createRandom();
const KEY = wallet.privateKey;
const KEY_HEX = KEY.slice(2);
const PASSPHRASE = 'correct horse battery staple';

let dir: string;
let rawKey: string;
let openKey: string;
let keystore: string;

function commons(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    input: options.input ?? '',
    env: { ...process.env, ...options.env },
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function neverShowsKey(...outputs: string[]): void {
  for (const text of outputs) {
    expect(text.toLowerCase()).not.toContain(KEY_HEX.toLowerCase());
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'commons-contribute-'));
  rawKey = join(dir, 'key');
  writeFileSync(rawKey, `${KEY}\n`);
  chmodSync(rawKey, 0o600);
  openKey = join(dir, 'open-key');
  writeFileSync(openKey, KEY_HEX);
  chmodSync(openKey, 0o644);
  keystore = join(dir, 'keystore.json');
  // A cheap scrypt cost: the test checks the format, not the hardness.
  const json = await encryptKeystoreJson({ address: wallet.address, privateKey: KEY }, PASSPHRASE, {
    scrypt: { N: 1 << 10 },
  });
  writeFileSync(keystore, json);
  chmodSync(keystore, 0o644);
  mkdirSync(join(dir, 'notes'));
  writeFileSync(join(dir, 'notes', 'a.md'), 'Dear diary, the gnome moved again.\n'.repeat(20));
});

describe('key files', () => {
  it('loads a raw 0x private key that only its owner can read', async () => {
    const signer = await loadSigner(rawKey);
    expect(await signer.getAddress()).toBe(wallet.address);
  });

  it('refuses a raw key that group or others can read, without showing it', async () => {
    const err = (await loadSigner(openKey).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/other users may read it \(mode 0644\); run: chmod 600/);
    neverShowsKey(err.message, String(err.stack));
  });

  it('decrypts a JSON keystore with COMMONS_KEY_PASSPHRASE', async () => {
    const signer = await loadSigner(keystore, { COMMONS_KEY_PASSPHRASE: PASSPHRASE });
    expect(await signer.getAddress()).toBe(wallet.address);
  });

  it('refuses a wrong passphrase, and asks for a missing one', async () => {
    await expect(loadSigner(keystore, { COMMONS_KEY_PASSPHRASE: 'wrong' })).rejects.toThrow(
      /wrong passphrase for the keystore .*COMMONS_KEY_PASSPHRASE/,
    );
    const missing = await loadSigner(keystore, {}).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(UsageError);
    expect((missing as Error).message).toMatch(/set COMMONS_KEY_PASSPHRASE/);
  });

  it('refuses a file that holds neither, without echoing it', async () => {
    const junk = join(dir, 'junk');
    writeFileSync(junk, `${KEY_HEX}zz`);
    chmodSync(junk, 0o600);
    const err = (await loadSigner(junk).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/neither a 0x private key nor an encrypted JSON keystore/);
    neverShowsKey(err.message);
    await expect(loadSigner(join(dir, 'absent'))).rejects.toThrow(/no such key file/);
  });
});

describe('commons contribute', () => {
  const base = () => [
    'contribute',
    '--coordinator',
    'http://127.0.0.1:9',
    '--data',
    join(dir, 'notes'),
  ];

  it('is listed in the usage', () => {
    const r = commons(['help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/contribute --coordinator URL/);
  });

  it('says which flag is missing or wrong (exit 2)', () => {
    const missing = commons(['contribute', '--data', join(dir, 'notes'), '--key', rawKey]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^commons: commons contribute needs --coordinator URL/);
    expect(commons([...base()]).err).toMatch(/needs --key KEYFILE/);
    const badUrl = commons([
      'contribute',
      '--coordinator',
      'nowhere',
      '--data',
      'x',
      '--key',
      rawKey,
    ]);
    expect(badUrl.code).toBe(2);
    expect(badUrl.err).toMatch(/is not a URL/);
    const rounds = commons([...base(), '--key', rawKey, '--rounds', '0']);
    expect(rounds.code).toBe(2);
    expect(rounds.err).toMatch(/--rounds 0 is not valid/);
  });

  it('refuses a readable key file in one line, never printing the key (exit 1)', () => {
    const r = commons([...base(), '--key', openKey, '--yes']);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/chmod 600/);
    neverShowsKey(r.out, r.err);
  });

  it('refuses a wrong keystore passphrase in one line (exit 1)', () => {
    const r = commons([...base(), '--key', keystore, '--yes'], {
      env: { COMMONS_KEY_PASSPHRASE: 'wrong' },
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^commons: wrong passphrase/);
    neverShowsKey(r.out, r.err);
  });

  it('sends nothing without consent', () => {
    const r = commons([...base(), '--key', rawKey], { input: 'n\n' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/Take part\? \[y\/N\]/);
    expect(r.err).toMatch(/consent not given; nothing was sent/);
    expect(r.out).not.toMatch(/connecting/);
    neverShowsKey(r.out, r.err);
  });
});
