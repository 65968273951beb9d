// The Models screen's library in real Chromium (web mode): the built renderer, served by the
// bridge, talking to the real core against a devnet, with a tiny model already in the member's
// library. The screen lists it with its format, identity and the memory it needs here.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDevnet, type Devnet } from '@commons/contracts';
import {
  importModel,
  ModelLibrary,
  parseDecoderConfig,
  randomDecoderWeights,
  writeHfFolder,
  type LibraryEntry,
} from '@commons/shared/engine';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../src/bridge/server.ts';
import { startHost, type Host } from '../src/main/host.ts';
import { RENDERER_DIR } from '../src/main/renderer-files.ts';
import { buildRenderer } from './fixtures/build-renderer.ts';
import { launchChromium } from './fixtures/chromium.ts';

const SCREENSHOTS =
  process.env.COMMONS_SCREENSHOTS_DIR ??
  fileURLToPath(new URL('../../docs/screenshots/', import.meta.url));

let dir: string;
let devnet: Devnet;
let host: Host;
let bridge: Bridge;
let browser: Browser;
let page: Page;
let entry: LibraryEntry;
const pageErrors: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  await buildRenderer();
  dir = await mkdtemp(path.join(os.tmpdir(), 'commons-ui-library-'));
  devnet = await startDevnet(dir, {});
  const config = {
    model_type: 'llama',
    vocab_size: 64,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 64,
    tie_word_embeddings: true,
  };
  const folder = path.join(dir, 'Tiny-Llama');
  await writeHfFolder(folder, {
    config,
    tensors: randomDecoderWeights(parseDecoderConfig(config), 5),
  });
  await writeFile(
    path.join(folder, 'tokenizer.json'),
    JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: {}, merges: [] } }),
  );
  await writeFile(path.join(folder, 'tokenizer_config.json'), '{}');
  const libraryDir = path.join(dir, 'library');
  entry = await importModel(new ModelLibrary(libraryDir), folder, { licence: 'apache-2.0' });
  host = await startHost({
    launch: {
      dataDir: path.join(dir, 'desktop'),
      port: 0,
      mode: 'web',
      help: false,
      rpcUrl: devnet.rpcUrl,
      addresses: devnet.addressesFile,
    },
    mode: 'web',
    core: { scrypt: { vaultLogN: 15, walletLogN: 15 }, modelLibraryDir: libraryDir },
  });
  bridge = await startBridge({
    dispatcher: host.dispatcher,
    events: host.events,
    rendererDir: RENDERER_DIR,
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
  });
  await page.goto(bridge.url);
});

afterAll(async () => {
  await browser?.close();
  await bridge?.close();
  await host?.close();
  await devnet?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Models screen: the member’s library', () => {
  it('lists a library model with its format, identity, licence and the memory it needs', async () => {
    await page.getByRole('heading', { name: 'Create your vault' }).waitFor();
    await page.getByLabel(/New passphrase/).fill('correct horse battery');
    await page.getByRole('button', { name: 'Create vault' }).click();
    await page.getByRole('textbox', { name: 'Message' }).waitFor();

    await page
      .getByRole('navigation', { name: 'Screens' })
      .getByRole('link', { name: 'Models' })
      .click();
    await page.getByRole('heading', { name: 'Your model library' }).waitFor();
    const row = page.getByTestId('library-tiny-llama');
    await row.waitFor();
    const text = await row.innerText();
    expect(text).toMatch(/tiny-llama/);
    expect(text).toMatch(/Hugging Face folder/);
    expect(text).toMatch(/apache-2\.0/);
    expect(text).toMatch(/about .* · [\d,]+ parameters/);
    expect(await row.locator(`code[title="${entry.identity}"]`).innerText()).toMatch(
      new RegExp(`^${entry.identity.slice(0, 6)}`),
    );
    await row.getByRole('button', { name: "Propose as the community's base model" }).waitFor();
    await page.getByText('The community has not chosen a base model yet.').waitFor();
    const height = await page.locator('main').evaluate((main) => main.scrollHeight);
    await page.setViewportSize({ width: 1280, height: Math.max(860, height) });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'models-library.png') });
    expect(pageErrors).toEqual([]);
  });
});
