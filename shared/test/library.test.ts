import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { exportGguf } from '../src/decoder/gguf.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { encodeSafetensors } from '../src/formats/safetensors.ts';
import { writeHfFolder } from '../src/formats/hf-folder.ts';
import { importModel } from '../src/library/import.ts';
import { modelIdentity } from '../src/library/identity.ts';
import { baseModelDescription, ModelLibrary, readmeLicence } from '../src/library/library.ts';
import { pullModel, PullError, type PullProgress } from '../src/library/hub-pull.ts';
import { openChatModel, resolveModel, ModelTooLargeError } from '../src/library/open.ts';
import { TINY_DECODERS } from '../reference/tiny-decoders.ts';
import { startFakeHub, type FakeHub } from './hub/fake-hub.ts';

const tiny = TINY_DECODERS[2]!; // Qwen2-shaped
const config = parseDecoderConfig(tiny.config);
const tensors = randomDecoderWeights(config, 9);
const tokenizerJson = JSON.stringify({
  version: '1.0',
  model: { type: 'BPE', vocab: {}, merges: [] },
});

let dir: string;
let hub: FakeHub;
let weights: Buffer;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-library-'));
  weights = encodeSafetensors([...tensors].map(([name, t]) => ({ name, ...t })));
  const files = {
    'config.json': Buffer.from(JSON.stringify(tiny.config)),
    'generation_config.json': Buffer.from(JSON.stringify({ eos_token_id: [2, 3] })),
    'tokenizer.json': Buffer.from(tokenizerJson),
    'tokenizer_config.json': Buffer.from(JSON.stringify({ eos_token: '<|im_end|>' })),
    'model.safetensors': weights,
    'README.md': Buffer.from('---\nlicense: apache-2.0\n---\n# tiny\n'),
    'onnx/model.onnx': Buffer.from('not wanted'),
  };
  hub = await startFakeHub({
    'commons/tiny-qwen': { files, lfs: new Set(['model.safetensors']) },
    'gated/tiny-llama': { files, lfs: new Set(['model.safetensors']), gatedToken: 'hf_secret' },
    'commons/tiny-gguf': {
      files: {
        'tiny-q8_0.gguf': Buffer.from('x'.repeat(100)),
        'tiny-f16.gguf': Buffer.from('y'.repeat(100)),
      },
      lfs: new Set(['tiny-q8_0.gguf', 'tiny-f16.gguf']),
    },
  });
});
afterAll(async () => {
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});

describe('commons model pull, against a server that answers as the hub does', () => {
  it('downloads what a chat model needs, resumes a cut transfer with Range, and records the identity', async () => {
    const library = new ModelLibrary(path.join(dir, 'lib-pull'));
    const sha = createHash('sha256').update(weights).digest('hex');
    hub.cutNext.set(sha, 1000);
    const progress: PullProgress[] = [];
    const entry = await pullModel({
      repo: 'commons/tiny-qwen',
      hubUrl: hub.url,
      library,
      onProgress: (p) => progress.push(p),
    });
    expect(entry.name).toBe('tiny-qwen');
    expect(entry.format).toBe('hf');
    expect(entry.licence).toBe('apache-2.0');
    expect(entry.source).toMatchObject({
      kind: 'hub',
      repo: 'commons/tiny-qwen',
      revision: 'main',
      commit: 'a'.repeat(40),
    });
    expect(entry.files.map((f) => f.name).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(await readFile(path.join(library.folder('tiny-qwen'), 'model.safetensors'))).toEqual(
      weights,
    );
    expect(await readdir(library.folder('tiny-qwen'))).not.toContain('onnx');
    // The transfer was cut after 1000 bytes and resumed from where it stopped.
    const cdn = hub.requests.filter((r) => r.url === `/cdn/${sha}`);
    expect(cdn.length).toBeGreaterThanOrEqual(2);
    expect(cdn.at(-1)!.range).toBe('bytes=1000-');
    expect(progress.at(-1)!.bytes).toBe(progress.at(-1)!.totalBytes);
    expect(entry.identity).toBe(modelIdentity(entry.files));
    expect((await library.list()).map((e) => e.name)).toEqual(['tiny-qwen']);
    await library.verify('tiny-qwen', entry.identity);
  });

  it('refuses a download that does not match the hub’s sha256, keeping nothing', async () => {
    const library = new ModelLibrary(path.join(dir, 'lib-corrupt'));
    const sha = createHash('sha256').update(weights).digest('hex');
    hub.corrupt.add(sha);
    try {
      await expect(
        pullModel({ repo: 'commons/tiny-qwen', hubUrl: hub.url, library }),
      ).rejects.toThrow(/CHECKSUM: model.safetensors does not match the hub's sha256/);
    } finally {
      hub.corrupt.delete(sha);
    }
    expect(await library.list()).toEqual([]);
    expect(await readdir(library.folder('tiny-qwen'))).not.toContain('model.safetensors.part');
  });

  it('gated models need HF_TOKEN; with it they pull', async () => {
    const library = new ModelLibrary(path.join(dir, 'lib-gated'));
    await expect(pullModel({ repo: 'gated/tiny-llama', hubUrl: hub.url, library })).rejects.toThrow(
      /UNAUTHORIZED: .*set HF_TOKEN/,
    );
    const entry = await pullModel({
      repo: 'gated/tiny-llama',
      hubUrl: hub.url,
      library,
      token: 'hf_secret',
    });
    expect(entry.name).toBe('tiny-llama');
  });

  it('names what is wrong: an unknown repo, several GGUF files without --file, and no network', async () => {
    const library = new ModelLibrary(path.join(dir, 'lib-errors'));
    await expect(pullModel({ repo: 'nobody/nothing', hubUrl: hub.url, library })).rejects.toThrow(
      /NOT_FOUND/,
    );
    await expect(
      pullModel({ repo: 'commons/tiny-gguf', hubUrl: hub.url, library }),
    ).rejects.toThrow(/several GGUF files; choose one with --file: .*tiny-q8_0.gguf/);
    const offline = pullModel({
      repo: 'commons/tiny-qwen',
      hubUrl: 'http://127.0.0.1:9',
      library,
      attempts: 1,
    });
    await expect(offline).rejects.toThrow(PullError);
    await expect(offline).rejects.toThrow(/OFFLINE: cannot reach .*commons model import/);
  });
});

describe('commons model import, list, verify, rm', () => {
  it('imports a GGUF file where it lies and a folder, verifies them, notices tampering, removes', async () => {
    const library = new ModelLibrary(path.join(dir, 'lib-import'));
    const folder = path.join(dir, 'hf-model');
    await writeHfFolder(folder, { config: tiny.config, tensors });
    await writeFile(path.join(folder, 'tokenizer.json'), tokenizerJson);
    await writeFile(path.join(folder, 'tokenizer_config.json'), '{}');
    const gguf = path.join(dir, 'downloads', 'Tiny-Qwen-Q8_0.gguf');
    await mkdir(path.dirname(gguf), { recursive: true });
    await exportGguf({
      out: gguf,
      name: 'tiny',
      config,
      tokenizer: {
        tokenizerJson: {
          model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] },
          pre_tokenizer: {
            type: 'ByteLevel',
            add_prefix_space: false,
            trim_offsets: true,
            use_regex: true,
          },
        },
        tokenizerConfig: {},
      },
      bosTokenId: null,
      eosTokenId: 1,
      type: 'q8_0',
      read: async (name) => tensors.get(name)!,
    });
    const a = await importModel(library, gguf);
    expect(a).toMatchObject({
      name: 'tiny-qwen-q8_0',
      format: 'gguf',
      location: path.dirname(gguf),
    });
    const b = await importModel(library, folder, { name: 'tiny-hf', copy: true });
    expect(b.location).toBe(library.folder('tiny-hf'));
    expect((await library.list()).map((e) => e.name)).toEqual(['tiny-hf', 'tiny-qwen-q8_0']);
    await expect(importModel(library, gguf)).rejects.toThrow(
      /EXISTS: the library already has "tiny-qwen-q8_0"/,
    );
    await expect(importModel(library, path.join(folder, 'config.json'))).rejects.toThrow(
      /not a .gguf file/,
    );

    const ref = await resolveModel('tiny-qwen-q8_0', library);
    expect(ref).toMatchObject({ format: 'gguf', path: gguf });
    await library.verify('tiny-hf');
    const bytes = await readFile(gguf);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(gguf, bytes);
    await expect(library.verify('tiny-qwen-q8_0')).rejects.toThrow(
      /MISMATCH: .*does not match its recorded sha256/,
    );
    await library.remove('tiny-hf');
    expect((await library.list()).map((e) => e.name)).toEqual(['tiny-qwen-q8_0']);
  });

  it('takes the licence from the model card or the member, and describes the model for the chain', async () => {
    const library = new ModelLibrary(path.join(dir, 'lib-licence'));
    const folder = path.join(dir, 'hf-licensed');
    await writeHfFolder(folder, { config: tiny.config, tensors });
    await writeFile(path.join(folder, 'tokenizer.json'), tokenizerJson);
    await writeFile(path.join(folder, 'tokenizer_config.json'), '{}');
    await writeFile(
      path.join(folder, 'README.md'),
      '---\nlicense: other\nlicense_name: llama3.2\n---\n# license: not-this\n',
    );
    const carded = await importModel(library, folder);
    expect(carded.licence).toBe('llama3.2');
    expect(baseModelDescription(carded)).toEqual({
      identity: carded.identity,
      format: 'hf-folder',
      licence: 'llama3.2',
      name: 'hf-licensed',
    });
    const stated = await importModel(library, folder, { name: 'stated', licence: 'apache-2.0' });
    expect(stated.licence).toBe('apache-2.0');
    expect((await library.setLicence('stated', 'mit')).licence).toBe('mit');
    expect((await library.get('stated')).licence).toBe('mit');
    expect(readmeLicence('# no front matter\nlicense: mit\n')).toBeNull();
    expect(readmeLicence('---\nlicense: "apache-2.0"\n---\n')).toBe('apache-2.0');
  });

  it('refuses, before loading, a model that will not fit, saying what it needs', async () => {
    const library = new ModelLibrary(path.join(dir, 'lib-memory'));
    const folder = path.join(dir, 'hf-model');
    const ref = await resolveModel(folder, library);
    const attempt = openChatModel(ref, { availableBytes: 50e6 });
    await expect(attempt).rejects.toThrow(ModelTooLargeError);
    await expect(attempt).rejects.toThrow(
      /needs about \d+ MB of memory here .* this machine has 50 MB available/,
    );
  });
});
