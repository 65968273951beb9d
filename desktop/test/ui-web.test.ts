// The whole desktop app in web mode, in real Chromium: the built renderer, served by the bridge,
// talking to the real core, against a real devnet (Commons deployed) and a real coordinator
// (serving the genesis model). Each screen is exercised with real data and photographed into
// docs/screenshots/.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Wallet } from 'ethers';
import { startDevnet, type Devnet } from '@commons/contracts';
import { startCoordinator, type Coordinator } from '@commons/coordinator';
import { FederatedClient } from '@commons/shared/contributor';
import { readCorpus } from '@commons/shared/engine';
import type { RoundResult } from '@commons/shared/protocol';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../src/bridge/server.ts';
import { startHost, type Host } from '../src/main/host.ts';
import { RENDERER_DIR } from '../src/main/renderer-files.ts';
import { buildRenderer } from './fixtures/build-renderer.ts';
import { launchChromium } from './fixtures/chromium.ts';

// The documentation's pictures by default; elsewhere when a run should leave docs/ as it is.
const SCREENSHOTS =
  process.env.COMMONS_SCREENSHOTS_DIR ??
  fileURLToPath(new URL('../../docs/screenshots/', import.meta.url));
const SONNETS = fileURLToPath(new URL('./fixtures/sonnets.md', import.meta.url));
const PASSPHRASE = 'correct horse battery';

let dir: string;
let devnet: Devnet;
let coordinator: Coordinator;
let host: Host;
let bridge: Bridge;
let browser: Browser;
let page: Page;
/** The second contributor of the federated round (the desktop's own client is the first). */
let contributor: FederatedClient | undefined;
const results: RoundResult[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  // Chromium first: without it nothing else is worth starting.
  browser = await launchChromium();
  await buildRenderer();
  dir = await mkdtemp(path.join(os.tmpdir(), 'commons-ui-'));
  // Two contributors make a round; plain (unmasked) uploads keep this UI test about the UI —
  // secure aggregation has its own round tests in coordinator/. DP noise stays on (z = 1).
  devnet = await startDevnet(dir, { minClients: 2, secureAggregation: false });
  coordinator = await startCoordinator({
    port: 0,
    dataDir: path.join(dir, 'coordinator'),
    rpcUrl: devnet.rpcUrl,
    addressesFile: devnet.addressesFile,
    privateKey: devnet.keys[0]!,
    logLevel: 'silent',
    // One tiny round: a step of two sequences, scored on 500 held-out characters.
    batchSize: 2,
    maxSteps: 1,
    evalChars: 500,
    maxRounds: 1,
    // Client-level DP needs many clients: with two, the noise (σC/2 per coordinate, z = 1)
    // swamps a one-step update and the candidate scores worse than genesis. This test is about
    // the UI, so the coordinator publishes it anyway.
    publishMarginBpc: 100,
  });
  host = await startHost({
    launch: {
      dataDir: path.join(dir, 'desktop'),
      port: 0,
      mode: 'web',
      help: false,
      rpcUrl: devnet.rpcUrl,
      coordinatorUrl: coordinator.url,
      addresses: devnet.addressesFile,
    },
    mode: 'web',
    core: { scrypt: { vaultLogN: 15, walletLogN: 15 }, activeModelPollMs: 1_000 },
  });
  bridge = await startBridge({
    dispatcher: host.dispatcher,
    events: host.events,
    rendererDir: RENDERER_DIR,
  });
  await mkdir(SCREENSHOTS, { recursive: true });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
  });
  await page.goto(bridge.url);
});

afterAll(async () => {
  await contributor?.close();
  await browser?.close();
  await bridge?.close();
  await host?.close();
  await coordinator?.close();
  await devnet?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function open(screen: string): Promise<void> {
  await page
    .getByRole('navigation', { name: 'Screens' })
    .getByRole('link', { name: screen })
    .click();
  await page.locator(`main[aria-label="${screen}"]`).waitFor();
}

/** The whole screen: the main pane scrolls, so the window is grown to its content first. */
async function shoot(name: string): Promise<void> {
  const height = await page.locator('main').evaluate((main) => main.scrollHeight);
  await page.setViewportSize({ width: 1280, height: Math.max(860, height) });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
  await page.setViewportSize({ width: 1280, height: 860 });
}

/** Fails with what the page says when it shows an error, instead of timing out later. */
async function noErrorShown(): Promise<void> {
  const alerts = await page.locator('.notice.error').allInnerTexts();
  expect(alerts).toEqual([]);
}

/** Moves the devnet's clock forward and mines a block at the new time. */
async function advance(seconds: number): Promise<void> {
  await rpc('evm_increaseTime', [seconds]);
  await rpc('evm_mine', []);
}

async function rpc(method: string, params: unknown[]): Promise<void> {
  const response = await fetch(devnet.rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = (await response.json()) as { error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`gave up after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('desktop UI in web mode', () => {
  it('takes the token from the fragment, hides it, and creates the vault', async () => {
    expect(page.url()).not.toContain('token=');
    await page.getByRole('heading', { name: 'Create your vault' }).waitFor();
    await page.getByLabel(/New passphrase/).fill(PASSPHRASE);
    await page.getByRole('button', { name: 'Create vault' }).click();
    await page.getByRole('textbox', { name: 'Message' }).waitFor();
  });

  it('sends a chat message and shows the reply as it streams', async () => {
    // Record every text the streaming bubble shows before the reply is stored.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { streamed: string[] }).streamed = seen;
      new MutationObserver(() => {
        const bubble = document.querySelector('.message.assistant.streaming .markdown');
        if (bubble?.textContent) seen.push(bubble.textContent);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page
      .getByRole('textbox', { name: 'Message' })
      .fill('ROMEO: What light through yonder window breaks?');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Stop' }).waitFor();
    await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 120_000 });
    await noErrorShown();
    const reply = page.locator('.message.assistant').last();
    const text = (await reply.locator('.markdown').innerText()).trim();
    expect(text.length).toBeGreaterThan(0);
    const streamed = await page.evaluate(
      () => (window as unknown as { streamed: string[] }).streamed,
    );
    expect(new Set(streamed).size).toBeGreaterThan(1);
    // The model bar names the version and the backend that answered.
    const bar = page.locator('.model-bar');
    await bar.getByText(/parameters/).waitFor();
    expect(await bar.innerText()).toMatch(/Model\s+[0-9a-f]{6}…/);
    expect(await bar.locator('.badge').innerText()).toMatch(/wasm|cpu|tensorflow|webgpu/);
    expect(await page.locator('.chat-item').count()).toBe(1);
    await shoot('chat');
  });

  it('imports a document and lists it with its size', async () => {
    await open('My data');
    await page.getByText('No documents yet').waitFor();
    const text = await readFile(SONNETS);
    await page.getByTestId('file-input').setInputFiles({
      name: 'sonnets.md',
      mimeType: 'text/markdown',
      buffer: text,
    });
    const row = page.getByRole('row', { name: /sonnets\.md/ });
    await row.waitFor();
    expect(await row.innerText()).toContain(`${(text.length / 1024).toFixed(1)} KiB`);
    await page.getByText('Imported 1 file.').waitFor();
    await shoot('data');
  });

  it('trains a personal adapter and shows progress to the end', async () => {
    await open('Personalise');
    await page.getByRole('checkbox', { name: /sonnets\.md/ }).check();
    await page.getByLabel('Steps').fill('4');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page
      .getByTestId('training-step')
      .filter({ hasText: '4 / 4' })
      .waitFor({ timeout: 150_000 });
    await page.locator('.badge.state-done').waitFor({ timeout: 60_000 });
    await page.getByRole('checkbox', { name: 'Use in chat' }).waitFor();
    const bar = page.getByRole('progressbar', { name: 'Training progress' });
    expect(await bar.getAttribute('aria-valuenow')).toBe('4');
    await shoot('personalise');
  });

  it('imports a wallet, locks and unlocks it, and votes on a proposal', async () => {
    await open('Governance');
    await page.getByRole('radio', { name: 'Import an account' }).check();
    await page.getByLabel('Recovery phrase or private key').fill(devnet.keys[1]!);
    await page.getByLabel(/Passphrase to encrypt it/).fill(PASSPHRASE);
    await page.getByRole('button', { name: 'Import account' }).click();
    const votes = page.getByTestId('wallet-votes');
    await votes.waitFor();
    expect(await votes.innerText()).not.toMatch(/^0 votes/);
    await page.getByRole('button', { name: 'Lock wallet' }).click();
    await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
    await page.getByRole('button', { name: 'Unlock wallet' }).click();
    await votes.waitFor();

    // Another member's proposal, made through the same API the page uses; then the chain's
    // clock moves past the voting delay so voting opens.
    const proposed = await host.dispatcher.call('governance.proposePolicy', {
      changes: { epsilonBudget: 12 },
      description: 'Raise the ε budget to 12\n\nMore rounds per member before the budget runs out.',
    });
    expect(proposed.ok).toBe(true);
    await rpc('evm_increaseTime', [5]);
    await rpc('evm_mine', []);
    await page.reload();
    await open('Governance');
    const card = page.locator('article.proposal', { hasText: 'Raise the ε budget to 12' });
    await card.locator('.badge.state-active').waitFor();
    expect(await card.getByTestId('votes-for').innerText()).toBe('0');
    await card.getByRole('radio', { name: 'for' }).check();
    await card.getByLabel(/Reason/).fill('Members asked for more rounds.');
    await card.getByRole('button', { name: 'Cast vote' }).click();
    await card.getByText(/Vote counted in block \d+/).waitFor();
    await card.getByText('You have voted on this proposal.').waitFor();
    expect(await card.getByTestId('votes-for').innerText()).not.toBe('0');
    // The policy diff shows what the proposal would change.
    expect(await card.locator('table.diff').innerText()).toMatch(/ε budget\s+10\s+12/);
    await shoot('governance');
  });

  it('shows the federation consent with the on-chain policy and ε budget', async () => {
    await open('Federation');
    await page.getByText('ε budget').first().waitFor();
    await page.getByRole('heading', { name: 'Your consent' }).waitFor();
    await page.getByRole('heading', { name: 'Your privacy budget' }).waitFor();
    await page.getByText(/Spent ε = 0 of/).waitFor();
    await shoot('federation');
  });

  it('opts in, completes a federated round with another contributor, and shows its ε and reward', async () => {
    await open('Federation');
    await page.getByRole('checkbox', { name: 'sonnets.md' }).check();
    await page.getByRole('button', { name: 'I agree: join federated training' }).click();
    await page.getByRole('button', { name: 'Start contributing' }).click();
    await page.locator('.badge.conn-online').waitFor({ timeout: 30_000 });

    // The second contributor: the same client class, another funded account, its own text.
    contributor = new FederatedClient({
      coordinator: coordinator.url,
      signer: new Wallet(devnet.keys[2]!),
      data: readCorpus().slice(0, 20_000),
      consent: true,
    });
    contributor.on('result', (result) => results.push(result));
    contributor.connect();

    const row = page.getByRole('row', { name: /^1\s+accepted/ });
    await row.waitFor({ timeout: 150_000 });
    // The member's own ledger counted the round: a finite ε within the budget of 10.
    const epsilon = Number((await row.locator('td').nth(2).innerText()).trim());
    expect(epsilon).toBeGreaterThan(0);
    expect(epsilon).toBeLessThanOrEqual(10);
    await page
      .getByTestId('privacy-spent')
      .filter({ hasText: `ε = ${epsilon} of 10` })
      .waitFor();
    await page.locator('.chart').first().waitFor();

    await until(() => results.some((r) => r.roundId === 1), 150_000);
    const result = results.find((r) => r.roundId === 1)!;
    expect(result, result.reason).toMatchObject({ outcome: 'published' });
    // The reward root is posted with the candidate; the coordinator's claim verifies on chain.
    const reward = page.getByTestId('reward-1');
    const claim = reward.getByRole('button', { name: 'Claim' });
    for (let tries = 0; !(await claim.isVisible()); tries++) {
      if (tries === 60)
        throw new Error(`round 1's reward never became claimable: ${await reward.innerText()}`);
      await page.reload();
      await open('Federation');
      await reward.waitFor();
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await claim.click();
    await page.getByText(/Round 1's reward claimed in block \d+/).waitFor();
    await reward.getByText('claimed').waitFor();
    await noErrorShown();
    await shoot('federation-round');
  });

  it('proposes the candidate of that round, votes, queues, executes, and switches chat to it', async () => {
    const candidate = results.find((r) => r.roundId === 1)?.candidate?.hash;
    expect(candidate).toMatch(/^(0x)?[0-9a-f]{64}$/);
    const hash = `0x${candidate!.replace(/^0x/, '')}`;
    await open('Governance');
    await page.getByText('Propose a model version').click();
    await page.getByLabel('Candidate').selectOption(hash);
    await page.getByLabel('Why (the first line is the title)').first().fill('Activate round 1');
    await page.getByRole('button', { name: 'Propose', exact: true }).first().click();
    await page.getByText(/Proposed \(#/).waitFor();

    await advance(2);
    await page.reload();
    await open('Governance');
    const card = page.locator('article.proposal', { hasText: 'Activate round 1' });
    await card.locator('.badge.state-active').waitFor();
    await card.getByRole('radio', { name: 'for' }).check();
    await card.getByRole('button', { name: 'Cast vote' }).click();
    await card.getByText(/Vote counted in block \d+/).waitFor();

    await advance(301); // past the voting period
    await page.reload();
    await open('Governance');
    await card.locator('.badge.state-succeeded').waitFor();
    await card.getByRole('button', { name: 'Queue for execution' }).click();
    await card.getByText(/Queued in block \d+/).waitFor();

    await advance(61); // past the timelock
    await page.reload();
    await open('Governance');
    await card.getByRole('button', { name: 'Execute' }).click();
    await card.getByText(/Executed in block \d+/).waitFor();
    await card.locator('.badge.state-executed').waitFor();
    await noErrorShown();
    await shoot('governance-executed');

    // The core sees the activation, fetches and verifies the version; chat offers the switch.
    await open('Chat');
    const offer = page.getByTestId('model-switch');
    await offer.getByRole('button', { name: 'Switch now' }).click({ timeout: 60_000 });
    await offer.waitFor({ state: 'detached', timeout: 60_000 });
    expect(await page.locator('.model-bar span[title]').first().getAttribute('title')).toBe(
      hash.slice(2),
    );

    await open('Models');
    const active = page.locator('.version.active');
    await active.locator(`code[title="${hash}"]`).waitFor();
    expect(await active.innerText()).toMatch(/verified copy/);
    expect(await active.innerText()).toMatch(/round 1/);
    await shoot('models-activated');
  });

  it('shows the model versions with the active one verified', async () => {
    await open('Models');
    const active = page.locator('.version.active');
    await active.waitFor();
    expect(await active.innerText()).toMatch(/verified copy/);
    await shoot('models');
  });

  it('shows settings, the backend report and connectivity', async () => {
    await open('Settings');
    await page.getByLabel('Chain RPC URL').waitFor();
    expect(await page.getByLabel('Chain RPC URL').inputValue()).toBe(devnet.rpcUrl);
    await page.getByText(/chain 31337, block \d+/).waitFor();
    await page.getByRole('heading', { name: 'Compute' }).waitFor();
    await shoot('settings');
  });

  it('switches to the dark theme', async () => {
    await page.getByLabel('Theme').selectOption('dark');
    expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');
    await open('Chat');
    await page.locator('.message.assistant').first().waitFor();
    await shoot('chat-dark');
  });

  it('raised no page errors and no CSP violations', () => {
    expect(pageErrors).toEqual([]);
  });
});
